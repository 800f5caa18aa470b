"""The worker's side of the dispatch protocol (see `workerlink.link.BrokerLink`)."""
