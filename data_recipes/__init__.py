"""earmark's data: record formats, audio I/O, corpus recipes, synthesis and dataset ingesters.

A manifest loads as a Hugging Face ``datasets.Dataset`` with an ``Audio`` column through
``data_recipes.hf_dataset.load_manifest_dataset``."""
