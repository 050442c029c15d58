"""Running esrun under SLURM: the templates under ``slurm/`` rendered (render), submitted (submit), watched (status).

Entry point: ``esrun slurm submit CONFIG [overrides] --backend ray|mpi|local ...`` and ``esrun slurm status``
(:func:`esrun.slurm.cli.main`).
"""
