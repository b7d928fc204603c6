"""Smart-city load forecasting as a raysim user writes it: a data function (``sensors.readings``)
and a comparison of FedAvg, FedProx and local-only models by each site's MSE (``compare``)."""
