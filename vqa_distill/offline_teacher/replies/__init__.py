"""What the offline teacher answers: measured answers, its own questions and scores, structured JSON."""
