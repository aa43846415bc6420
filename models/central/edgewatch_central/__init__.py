"""edgewatch central: the fleet's records landed in a Parquet store, training sets built from
operator feedback, a candidate classifier trained and gated against the active one, and its
signed package handed to the model lifecycle. See models/central/README.md."""
