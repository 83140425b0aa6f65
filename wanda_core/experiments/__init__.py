"""The experiments layer: one function per table, figure or claim of the book.

Each function takes a Profile (wanda_core.profiles.load_profile) and returns tidy pandas
DataFrames. It declares its run configurations once (through `P.config(...)`), runs them or
reuses their records through the runner, and does no formatting: labels, captions and table
style live in wanda_core.present. Chapters that need the same runs call the same function, so
no configuration is declared twice and no chapter holds logic.

    from wanda_core.profiles import load_profile
    from wanda_core.experiments import tables
    df = tables.table3(load_profile("smoke"))
"""
