"""The CSV contract of imports: the header of each kind, in order. ``volreg gen-data`` writes
these columns and the importer tells the kinds apart by them."""

COLUMNS = (
    "candidate_id",
    "name",
    "school_code",
    "password_hash",
    "total_score",
    "rank",
    "chinese",
    "math",
    "english",
    "elective",
)
TEACHER_COLUMNS = ("username", "name", "school_code", "password_hash")
