"""The student judged against the teacher: cases, pairwise verdicts, rubric scores, the report and its page.

``cases`` reads what is evaluated, ``results`` holds what was found, ``plan`` turns answers into judge
requests (degenerate answers need none), ``summary`` counts, ``page``/``chart`` show. No Prefect here:
``flows/evaluate.py`` runs the inference and the judge calls and hands the answers in.
"""
