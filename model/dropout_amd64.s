//go:build amd64 && !purego

#include "textflag.h"

// func twistAVX2(s *uint32, n int, off int)
//
// mt19937's twist for s[0:n], 8 words at a time (n a multiple of 8): s[j] = s[j+off] ^
// ((s[j]&upper | s[j+1]&lower) >> 1) ^ (matrixA if s[j+1] is odd). The caller keeps
// every s[j+1] read still unset and every s[j+off] read already set, as the scalar
// order has them. Operand order is Go's: VPAND a, b, c is c = b & a.
TEXT ·twistAVX2(SB), NOSPLIT, $0-24
	MOVQ s+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ off+16(FP), DX
	SHLQ $2, DX
	MOVL $0x80000000, AX
	MOVQ AX, X15
	VPBROADCASTD X15, Y15 // upper
	MOVL $0x7fffffff, AX
	MOVQ AX, X14
	VPBROADCASTD X14, Y14 // lower
	MOVL $0x9908b0df, AX
	MOVQ AX, X13
	VPBROADCASTD X13, Y13 // matrix A
	XORQ BX, BX

twist:
	CMPQ    BX, CX
	JGE     twisted
	LEAQ    (DI)(BX*4), SI
	VMOVDQU (SI), Y0       // u = s[j]
	VMOVDQU 4(SI), Y1      // v = s[j+1]
	VPAND   Y15, Y0, Y0
	VPAND   Y14, Y1, Y2
	VPOR    Y2, Y0, Y0
	VPSRLD  $1, Y0, Y0     // mix >> 1
	VPSLLD  $31, Y1, Y1
	VPSRAD  $31, Y1, Y1    // all ones where v is odd
	VPAND   Y13, Y1, Y1
	VPXOR   Y1, Y0, Y0
	VPXOR   (SI)(DX*1), Y0, Y0 // ^ s[j+off]
	VMOVDQU Y0, (SI)
	ADDQ    $8, BX
	JMP     twist

twisted:
	VZEROUPPER
	RET

// func noiseAVX2(w *uint32, out *float32, n int, threshold uint64, scale float32)
//
// mt19937.noise's loop on untempered words w[0:2n], 8 elements a time (n a multiple of
// 8): temper, pair the words into random64 (the first the high half), keep its 53 low
// bits, and store scale where they are below threshold, else 0.
TEXT ·noiseAVX2(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ out+8(FP), DI
	MOVQ n+16(FP), CX
	VPBROADCASTQ threshold+24(FP), Y15
	VBROADCASTSS scale+32(FP), Y14
	MOVL $0x9d2c5680, AX
	MOVQ AX, X13
	VPBROADCASTD X13, Y13
	MOVL $0xefc60000, AX
	MOVQ AX, X12
	VPBROADCASTD X12, Y12
	MOVQ $0x001fffffffffffff, AX
	MOVQ AX, X11
	VPBROADCASTQ X11, Y11
	XORQ BX, BX

noise:
	CMPQ BX, CX
	JGE  noised
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1

	VPSRLD $11, Y0, Y2 // temper both
	VPXOR  Y2, Y0, Y0
	VPSRLD $11, Y1, Y3
	VPXOR  Y3, Y1, Y1
	VPSLLD $7, Y0, Y2
	VPAND  Y13, Y2, Y2
	VPXOR  Y2, Y0, Y0
	VPSLLD $7, Y1, Y3
	VPAND  Y13, Y3, Y3
	VPXOR  Y3, Y1, Y1
	VPSLLD $15, Y0, Y2
	VPAND  Y12, Y2, Y2
	VPXOR  Y2, Y0, Y0
	VPSLLD $15, Y1, Y3
	VPAND  Y12, Y3, Y3
	VPXOR  Y3, Y1, Y1
	VPSRLD $18, Y0, Y2
	VPXOR  Y2, Y0, Y0
	VPSRLD $18, Y1, Y3
	VPXOR  Y3, Y1, Y1

	VPSHUFD  $0xb1, Y0, Y0 // each pair as first<<32 | second
	VPSHUFD  $0xb1, Y1, Y1
	VPAND    Y11, Y0, Y0   // 53 low bits
	VPAND    Y11, Y1, Y1
	VPCMPGTQ Y0, Y15, Y0   // all ones where threshold > bits
	VPCMPGTQ Y1, Y15, Y1
	VSHUFPS  $0x88, Y1, Y0, Y2 // low halves: elements 0 1 4 5 | 2 3 6 7
	VPERMQ   $0xd8, Y2, Y2     // 0 1 2 3 | 4 5 6 7
	VANDPS   Y14, Y2, Y2
	VMOVUPS  Y2, (DI)

	ADDQ $64, SI
	ADDQ $32, DI
	ADDQ $8, BX
	JMP  noise

noised:
	VZEROUPPER
	RET
