"""The experiments layer: one function per table, figure or claim of the book.

Each function takes a Profile (wanda_core.study.profiles.load_profile) and returns tidy pandas
DataFrames. It declares its run configurations once (through `P.config(...)`), runs them or
reuses their records through the runner, and does no formatting: labels, captions and table
style live in wanda_core.report.present. Chapters that need the same runs call the same function, so
no configuration is declared twice and no chapter holds logic.

    tables     Table 3: table3, nm_table, dense (+ sparsity_check, per_block, pattern_check)
    sweeps     sparsity_sweep, breakdown, calibration_sweep, seed_spread
    ablations  comparison_group, group_steps, weight_update
    outliers   toy_example, activation_norms, summary, recurring_channels, mask_effect
    claims     claims(frames, paper): the paper's claims checked against the records
    costs      operation-count estimates of the score+mask step
    common     runs, frame, records

    from wanda_core.study.profiles import load_profile
    from wanda_core.study.experiments import tables
    df = tables.table3(load_profile("smoke"))
"""
