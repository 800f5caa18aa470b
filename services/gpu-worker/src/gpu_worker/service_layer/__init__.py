"""The worker's orchestration: its loop, one attempt of one job, the attempt's reporter. Talks to
the world only through the ports in `ports`; entrypoints wire the adapters behind them."""
