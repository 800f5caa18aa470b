"""What every HTTP service of Finetune Dispatcher shares: auth, errors, logging, database.

Import from the submodules (`servicekit.auth`, `servicekit.db`, ...); importing the package
itself stays cheap and pulls in neither SQLAlchemy nor FastAPI.
"""
