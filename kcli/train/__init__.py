"""`kcli train`: a LoadedRecipe -> a complete run folder (or an honest failed / interrupted one).

Prepares device, data, model and objective before the run folder exists (setup.py), assembles
the Trainer (assemble.py), runs it and writes the run's files (session.py), and starts a
distributed run's processes (launch.py). Entry point: `session.train`.
"""
