"""The analysis layer: what the chapters show, computed from Runs (verdicts, comparisons, tables, figures).

Each module is one kind of analysis; every verdict the book prints is a tested function here
with its thresholds in `verdicts`.
"""
