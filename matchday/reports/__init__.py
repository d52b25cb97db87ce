"""Merchandisers' reports (issue 6): materialized views, typed rows, CSV and PNG. No Ray.

``registry`` names the reports, ``reader`` opens the database they are read from (the read
replica when one is configured), ``output`` writes CSV and charts, ``schedule`` refreshes.
"""
