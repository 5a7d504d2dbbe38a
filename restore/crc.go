package restore

// crcCombiner computes CRC(A||B) from CRC(A), CRC(B) and len(B), for the
// reflected CRC-64 with inverted initial value and output that hash/crc64
// implements. CRC(A||B) = CRC(A)·x^(8·len(B)) ⊕ CRC(B) in GF(2)[x] modulo
// the polynomial, and x^(8n) is assembled from precomputed x^(2^k) factors
// (the method zlib's crc32_combine uses), so a combine costs
// O(log len) 64-bit carry-less multiplications.
type crcCombiner struct {
	poly uint64     // reflected polynomial
	x2n  [64]uint64 // x2n[k] = x^(2^k) mod poly
}

func newCRCCombiner(poly uint64) *crcCombiner {
	c := &crcCombiner{poly: poly}
	p := uint64(1) << 62 // x^1 (bit 63 is x^0 in reflected order)
	c.x2n[0] = p
	for k := 1; k < 64; k++ {
		p = c.mulmod(p, p)
		c.x2n[k] = p
	}
	return c
}

// mulmod returns a·b modulo the polynomial, both in reflected order.
func (c *crcCombiner) mulmod(a, b uint64) uint64 {
	var p uint64
	for m := uint64(1) << 63; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		if b&1 != 0 {
			b = b>>1 ^ c.poly
		} else {
			b >>= 1
		}
	}
	return p
}

// combine returns the CRC of A||B.
func (c *crcCombiner) combine(crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	// x^(8·lenB): walk lenB's bits, starting at x^(2^3) = x^8.
	p := uint64(1) << 63 // x^0
	for k, n := 3, uint64(lenB); n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = c.mulmod(c.x2n[k&63], p)
		}
	}
	return c.mulmod(p, crcA) ^ crcB
}
