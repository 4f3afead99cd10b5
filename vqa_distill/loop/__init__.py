"""The distil loop: rounds in which the student's mistakes and doubts choose what the teacher is asked next.

``params`` (the form), ``split`` (held-out / seed / pool images, fixed for the loop), ``state`` (what
each round did, on disk, so a killed loop resumes), ``budget`` (spend so far and what the next asks
may cost), ``targets`` (new questions where the judge ranked the student below the teacher),
``doubt`` (unlabelled images the student is least sure about), ``versions`` (the dataset per round),
``report`` (the table and plot). No Prefect here: ``flows/distill.py`` runs the rounds.
"""
