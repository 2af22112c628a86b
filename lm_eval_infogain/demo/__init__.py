"""The bundled demo: a tiny LLaDA-format masked diffusion model and its two puzzle tasks.

- ``puzzles``: seeded 9×9 Sudoku (unique solutions) and fixed-width addition generators.
- ``datasets``: the committed test sets in ``data/`` and how they were made.
- ``tokenizer``: the word-level tokenizer in LLaDA's checkpoint layout.
- ``training``: the recipe behind ``model/`` (``scripts/train_demo_model.py`` runs it).
- ``model/``: the trained checkpoint, the default ``pretrained`` of the ``infogain_mdm`` backend.
"""
