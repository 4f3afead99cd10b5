"""The images of a run: found in a folder by their bytes, and prepared for the teacher."""
