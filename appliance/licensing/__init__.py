"""Offline licensing: Ed25519-signed license and voucher files verified against the vendor's
public keys, license states, seats and the clock high-water mark."""
