"""Spreadsheets in and out: the sales office's Excel and CSV files (ADR 0039).

``reading`` turns a file into rows, ``columns`` recognises Chinese headers and aliases,
``values`` reads the values offices type (235万, 89.5㎡, 三室两厅, 2024年3月5日),
``units`` and ``clients`` turn rows into import rows, and ``export`` writes any view as
CSV or xlsx, streamed.
"""
