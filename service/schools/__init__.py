"""What teachers see: their school's candidates with the filing status of each batch."""
