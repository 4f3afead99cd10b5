"""Questions mode: the questions the teacher writes about an image, their answers, and the judge's scores."""
