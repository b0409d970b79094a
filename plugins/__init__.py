"""s3db_nb.plugins"""
