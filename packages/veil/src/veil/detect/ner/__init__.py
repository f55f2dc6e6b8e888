"""Model-based detectors (NER) for names, places and organisations; imported lazily."""
