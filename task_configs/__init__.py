"""lm-eval task configurations of lm_eval_infogain (YAML files, thin helpers and small shipped data)."""
