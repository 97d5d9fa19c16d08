"""``volreg loadtest``: wrk-driven scenarios against a deployment, with a JSON/Markdown report."""
