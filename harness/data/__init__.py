"""Event datasets: the simulated DVS, the embedded datasets, tonic readers, the frame cache."""
