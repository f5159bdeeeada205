"""One screen per job: dataset, config, train, results."""
