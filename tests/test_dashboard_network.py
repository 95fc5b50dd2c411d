"""The Network page under AppTest: every stage of the drawing, and a channel opened beside its filter."""

from dashboard_helpers import open_page, texts


def test_network_page_follows_a_digit_and_opens_a_channel(folder):
    at = open_page("6_Network.py")
    said = texts(at)
    for stage in ("input", "conv 1", "pool 1", "conv 2", "pool 2", "hidden", "logits", "softmax"):
        assert f"**{stage}**" in said
    assert "32 × 28 × 28 · 864 parameters" in said and "64 × 7 × 7" in said and "10 · 1,290 parameters" in said
    at.number_input(key="net_channel-0").set_value(5).run()
    at.slider(key="net_position-0-5").set_value(28 * 14 + 14).run()
    assert not at.exception, at.exception
    assert "At row 14, column 14" in texts(at)
    at.radio(key="net_layer").set_value("conv 2").run()
    assert not at.exception, at.exception
    assert "its input (pool 1, 32 channels summed)" in [i.proto.imgs[0].caption for i in at.image if i.proto.imgs]
