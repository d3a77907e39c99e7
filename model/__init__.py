"""PyTorch/gensim models: tokenizer, encoders, fusion, training loops, calibration."""
