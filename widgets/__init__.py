"""s3db_nb.widgets"""
