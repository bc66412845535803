"""Lumo's evaluation suite: YAML cases, deterministic graders, a runner and reports.

`python -m evals run` runs the cases against the offline model (or a real one with `--model NAME`) and writes
a markdown and a JSON report; `python -m evals regrade DIR` grades saved transcripts again. See evals/README.md.
"""
