"""Reports: each module turns an Evaluation into lines or a document; none writes to a terminal."""
