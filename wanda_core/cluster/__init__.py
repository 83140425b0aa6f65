"""Every run the book needs, planned and fanned out: `plan` lists a profile's runs from the chapters'
own calls, `sweep` makes the missing ones on a process pool, a Ray cluster or Slurm (submitit)."""
