from avdf.errors import InputError, one_line


def test_one_line_keeps_avdf_errors_and_cuts_foreign_ones_to_their_first_line():
    assert one_line("a.mp4", InputError("a.mp4", "no video stream")) == "a.mp4: no video stream"
    line = one_line("b.mp4", ValueError("bad header\nsecond line of detail"))
    assert line == "b.mp4: ValueError: bad header"
    assert one_line("c.mp4", OSError()) == "c.mp4: OSError: unexpected error"
