"""minicross: minimath's skills asked two at a time, scored by rule (exact answers)."""
