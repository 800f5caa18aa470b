from gpu_worker.entrypoints.cli import app

app(prog_name="ftd-worker")
