"""The lm-eval integration: the ``infogain_mdm`` model, its registration and its statistics.

Nothing is imported here on purpose: the registration hooks (``plugin``) run inside lm-eval's
import of its own modules and must not pull in torch; the model class lives in ``lm``.
"""
