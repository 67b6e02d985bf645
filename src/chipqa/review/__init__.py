"""The review loop without a screen: the ranked session, the chip loader, the blocklist."""
