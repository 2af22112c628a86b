"""Thin glue between the task YAMLs and lm_eval_infogain.scoring (all logic lives there).

Kept in this folder because lm-eval resolves ``!function infogain_utils.<name>`` next to the YAML; the
shipped data files are located relative to this file so a plain copy of the folder keeps working.
"""

from __future__ import annotations

from pathlib import Path

from lm_eval_infogain.scoring import antibody, code, countdown, data, infilling, math_answers, sudoku, writing

DATA_DIR = Path(__file__).resolve().parent / "data"

# datasets (custom_dataset)
gsm8k_dataset = data.load_gsm8k
math500_dataset = data.load_math500
mbpp_dataset = data.load_mbpp
humaneval_dataset = data.load_humaneval
writing_dataset = data.load_writing


def sudoku_dataset(**kwargs):
    return data.load_sudoku(DATA_DIR / "sudoku.csv", **kwargs)


def countdown_dataset(**kwargs):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(data.load_jsonl_file(DATA_DIR / "countdown.jsonl"))})


# code execution (filters) and pass@k (process_results)
execute_humaneval = code.execute_humaneval
execute_humaneval_cot = code.execute_humaneval_cot
execute_mbpp = code.execute_mbpp
execute_mbpp_cot = code.execute_mbpp_cot
pass_at_1 = code.pass_at_1
pass_at_1_and_10 = code.pass_at_1_and_10

# math, puzzles, writing
math500_cot_results = math_answers.process_results_cot
sudoku_doc_to_text = sudoku.doc_to_text
sudoku_results = sudoku.process_results
countdown_doc_to_text = countdown.doc_to_text
countdown_results = countdown.process_results
writing_results = writing.process_results

# infilling (docs/infilling.md): HumanEval-Infilling and antibody CDR-H3
humaneval_infilling_dataset = data.load_humaneval_infilling
humaneval_infilling_doc_to_text = infilling.doc_to_text
execute_humaneval_infilling = infilling.execute
antibody_cdrh3_doc_to_text = antibody.doc_to_text
antibody_cdrh3_results = antibody.process_results


def antibody_cdrh3_dataset(**kwargs):
    return antibody.cdrh3_dataset(data.load_sabdab_heavy_chains(DATA_DIR / "sabdab_heavy_chains.jsonl"))
