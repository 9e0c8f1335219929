"""What users read: one run's table and chart (:mod:`.single`), the side-by-side comparison of
many runs (:mod:`.comparison`, Markdown/CSV) and its charts (:mod:`.charts`)."""
