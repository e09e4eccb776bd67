//go:build amd64 && !purego

#include "textflag.h"
#include "go_asm.h"

// func adamwAVX2(k *adamwKernel, p, grad, m, v *float32, n int, d float32)
//
// adamwKernel.scalar's loop, 8 values at a time; n is a multiple of 8. Operand order is
// Go's: VSUBPS a, b, c is c = b - a; VFMADD231PS a, b, c is c = b*a + c.
TEXT ·adamwAVX2(SB), NOSPLIT, $0-52
	MOVQ k+0(FP), AX
	MOVQ p+8(FP), DI
	MOVQ grad+16(FP), SI
	MOVQ m+24(FP), R8
	MOVQ v+32(FP), R9
	MOVQ n+40(FP), CX
	VBROADCASTSS d+48(FP), Y15
	VBROADCASTSS adamwKernel_clip(AX), Y14
	VBROADCASTSS adamwKernel_w1(AX), Y13
	VBROADCASTSS adamwKernel_b2(AX), Y12
	VBROADCASTSS adamwKernel_w2(AX), Y11
	VBROADCASTSS adamwKernel_bc2(AX), Y10
	VBROADCASTSS adamwKernel_eps(AX), Y9
	VBROADCASTSS adamwKernel_stepSz(AX), Y8
	XORQ BX, BX

loop:
	CMPQ BX, CX
	JGE  done
	VMULPS      (SI)(BX*4), Y14, Y0 // g' = g * clip
	VMOVUPS     (R8)(BX*4), Y1      // m
	VSUBPS      Y1, Y0, Y2          // g' - m
	VFMADD231PS Y2, Y13, Y1         // m += w1 * (g' - m), rounded once
	VMOVUPS     Y1, (R8)(BX*4)
	VMULPS      (R9)(BX*4), Y12, Y3 // v * b2
	VMULPS      Y0, Y0, Y4          // g'^2
	VMULPS      Y11, Y4, Y4         // * w2
	VADDPS      Y4, Y3, Y3          // v
	VMOVUPS     Y3, (R9)(BX*4)
	VSQRTPS     Y3, Y4
	VDIVPS      Y10, Y4, Y4         // sqrt(v) / bc2
	VADDPS      Y9, Y4, Y4          // + eps
	VDIVPS      Y4, Y1, Y5          // m / denom
	VMULPS      Y8, Y5, Y5          // * stepSz
	VMULPS      (DI)(BX*4), Y15, Y6 // p * decay
	VADDPS      Y5, Y6, Y6
	VMOVUPS     Y6, (DI)(BX*4)
	ADDQ        $8, BX
	JMP         loop

done:
	VZEROUPPER
	RET

// func floorAVX2(p, grad, m, v *float32, n int)
//
// The memory traffic of adamwAVX2 (the same loads and stores, 8 values at a time) with
// an add in place of its arithmetic: BenchmarkAdamW's floor. n is a multiple of 8.
TEXT ·floorAVX2(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), CX
	XORQ BX, BX

floop:
	CMPQ    BX, CX
	JGE     fdone
	VMOVUPS (SI)(BX*4), Y0
	VADDPS  (R8)(BX*4), Y0, Y1 // m + g
	VMOVUPS Y1, (R8)(BX*4)
	VADDPS  (R9)(BX*4), Y0, Y2 // v + g
	VMOVUPS Y2, (R9)(BX*4)
	VADDPS  (DI)(BX*4), Y1, Y3 // p + m
	VMOVUPS Y3, (DI)(BX*4)
	ADDQ    $8, BX
	JMP     floop

fdone:
	VZEROUPPER
	RET

// func sumSquaresAVX2(x *float32, n int) float64
//
// Σx² in float64 (each square is exact; sixteen running sums), n a multiple of 16.
TEXT ·sumSquaresAVX2(SB), NOSPLIT, $0-24
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	XORQ   BX, BX

sloop:
	CMPQ        BX, CX
	JGE         sdone
	VCVTPS2PD   (SI)(BX*4), Y0
	VCVTPS2PD   16(SI)(BX*4), Y1
	VCVTPS2PD   32(SI)(BX*4), Y2
	VCVTPS2PD   48(SI)(BX*4), Y3
	VFMADD231PD Y0, Y0, Y4
	VFMADD231PD Y1, Y1, Y5
	VFMADD231PD Y2, Y2, Y6
	VFMADD231PD Y3, Y3, Y7
	ADDQ        $16, BX
	JMP         sloop

sdone:
	VADDPD       Y5, Y4, Y4
	VADDPD       Y7, Y6, Y6
	VADDPD       Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPD       X5, X4, X4
	VHADDPD      X4, X4, X4
	VZEROUPPER
	MOVSD        X4, ret+16(FP)
	RET

// func scaleAVX2(x *float32, n int, f float32)
//
// x *= f, n a multiple of 8.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS f+16(FP), Y1
	XORQ         BX, BX

mloop:
	CMPQ    BX, CX
	JGE     mdone
	VMULPS  (SI)(BX*4), Y1, Y0
	VMOVUPS Y0, (SI)(BX*4)
	ADDQ    $8, BX
	JMP     mloop

mdone:
	VZEROUPPER
	RET
