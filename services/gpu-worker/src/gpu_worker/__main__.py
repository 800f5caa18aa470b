from gpu_worker.cli import app

app(prog_name="ftd-worker")
