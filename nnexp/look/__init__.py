"""What reads finished runs back: `nnexp-report` (a table and overlay plots of many runs), the plots of a
single run, and `nnexp-generate` (text from a trained language model)."""
