//go:build amd64 && !purego

#include "textflag.h"

// The reduce loops (reduce.go), 16 values a step in two 8-lane registers. Go's operand
// order: VADDPS b, a, c is c = a + b. Every value gets the scalar loop's one add and one
// multiply, unfused, so the bits are the scalar loop's.

// func addToAVX2(dst, a, b *float32, n int)
// dst[i] = a[i] + b[i], for i < n, a multiple of 16; b may be dst.
TEXT ·addToAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	XORQ BX, BX

addto:
	CMPQ    BX, CX
	JGE     addtodone
	VMOVUPS (SI)(BX*4), Y0
	VMOVUPS 32(SI)(BX*4), Y1
	VADDPS  (DX)(BX*4), Y0, Y0
	VADDPS  32(DX)(BX*4), Y1, Y1
	VMOVUPS Y0, (DI)(BX*4)
	VMOVUPS Y1, 32(DI)(BX*4)
	ADDQ    $16, BX
	JMP     addto

addtodone:
	VZEROUPPER
	RET

// func finishAVX2(dst, acc, out *float32, n int, f float32)
// v = (dst[i] + acc[i]) * f; dst[i] = v; out[i] = v, for i < n, a multiple of 16; acc
// may be out, and out dst (addScaled: dst = (dst + src) * f).
TEXT ·finishAVX2(SB), NOSPLIT, $0-36
	MOVQ         dst+0(FP), DI
	MOVQ         acc+8(FP), SI
	MOVQ         out+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSS f+32(FP), Y15
	XORQ         BX, BX

finish:
	CMPQ    BX, CX
	JGE     finishdone
	VMOVUPS (DI)(BX*4), Y0
	VMOVUPS 32(DI)(BX*4), Y1
	VADDPS  (SI)(BX*4), Y0, Y0
	VADDPS  32(SI)(BX*4), Y1, Y1
	VMULPS  Y15, Y0, Y0
	VMULPS  Y15, Y1, Y1
	VMOVUPS Y0, (DI)(BX*4)
	VMOVUPS Y1, 32(DI)(BX*4)
	VMOVUPS Y0, (DX)(BX*4)
	VMOVUPS Y1, 32(DX)(BX*4)
	ADDQ    $16, BX
	JMP     finish

finishdone:
	VZEROUPPER
	RET
