"""Filing: progress per school and province-wide, the history of every save, submission."""
