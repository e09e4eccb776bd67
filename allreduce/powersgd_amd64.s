//go:build amd64 && !purego

#include "textflag.h"

// PowerSGD's products, 8 or 16 columns at a time (powersgd_kernels.go has the scalar
// loops and the layouts). Operand order is Go's: VFMADD231PS a, b, c is c = b*a + c;
// VSUBPS a, b, c is c = b - a.

// func dot4AVX2(x, mem, q *float32, stride, n int, out *[4]float32)
//
// With mem non-nil, x += mem first (stored). out[j] = Σ_k x[k]·q[j*stride+k], j < 4,
// each in 16 partial sums of fused multiply-adds (two of 8 lanes, so that the adds into
// one need not wait for each other), then summed pairwise. n is a multiple of 8.
TEXT ·dot4AVX2(SB), NOSPLIT, $0-48
	MOVQ   x+0(FP), DI
	MOVQ   mem+8(FP), R8
	MOVQ   q+16(FP), SI
	MOVQ   stride+24(FP), DX
	SHLQ   $2, DX
	MOVQ   n+32(FP), CX
	MOVQ   CX, R13
	ANDQ   $-16, R13
	MOVQ   out+40(FP), R9
	LEAQ   (SI)(DX*1), R10
	LEAQ   (R10)(DX*1), R11
	LEAQ   (R11)(DX*1), R12
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	XORQ   BX, BX
	TESTQ  R8, R8
	JZ     dot16

adddot16:
	CMPQ        BX, R13
	JGE         adddot
	VMOVUPS     (DI)(BX*4), Y4
	VMOVUPS     32(DI)(BX*4), Y5
	VADDPS      (R8)(BX*4), Y4, Y4
	VADDPS      32(R8)(BX*4), Y5, Y5
	VMOVUPS     Y4, (DI)(BX*4)
	VMOVUPS     Y5, 32(DI)(BX*4)
	VFMADD231PS (SI)(BX*4), Y4, Y0
	VFMADD231PS (R10)(BX*4), Y4, Y1
	VFMADD231PS (R11)(BX*4), Y4, Y2
	VFMADD231PS (R12)(BX*4), Y4, Y3
	VFMADD231PS 32(SI)(BX*4), Y5, Y6
	VFMADD231PS 32(R10)(BX*4), Y5, Y7
	VFMADD231PS 32(R11)(BX*4), Y5, Y8
	VFMADD231PS 32(R12)(BX*4), Y5, Y9
	ADDQ        $16, BX
	JMP         adddot16

adddot:
	CMPQ        BX, CX
	JGE         hsum
	VMOVUPS     (DI)(BX*4), Y4
	VADDPS      (R8)(BX*4), Y4, Y4
	VMOVUPS     Y4, (DI)(BX*4)
	VFMADD231PS (SI)(BX*4), Y4, Y0
	VFMADD231PS (R10)(BX*4), Y4, Y1
	VFMADD231PS (R11)(BX*4), Y4, Y2
	VFMADD231PS (R12)(BX*4), Y4, Y3
	ADDQ        $8, BX
	JMP         adddot

dot16:
	CMPQ        BX, R13
	JGE         dot
	VMOVUPS     (DI)(BX*4), Y4
	VMOVUPS     32(DI)(BX*4), Y5
	VFMADD231PS (SI)(BX*4), Y4, Y0
	VFMADD231PS (R10)(BX*4), Y4, Y1
	VFMADD231PS (R11)(BX*4), Y4, Y2
	VFMADD231PS (R12)(BX*4), Y4, Y3
	VFMADD231PS 32(SI)(BX*4), Y5, Y6
	VFMADD231PS 32(R10)(BX*4), Y5, Y7
	VFMADD231PS 32(R11)(BX*4), Y5, Y8
	VFMADD231PS 32(R12)(BX*4), Y5, Y9
	ADDQ        $16, BX
	JMP         dot16

dot:
	CMPQ        BX, CX
	JGE         hsum
	VMOVUPS     (DI)(BX*4), Y4
	VFMADD231PS (SI)(BX*4), Y4, Y0
	VFMADD231PS (R10)(BX*4), Y4, Y1
	VFMADD231PS (R11)(BX*4), Y4, Y2
	VFMADD231PS (R12)(BX*4), Y4, Y3
	ADDQ        $8, BX
	JMP         dot

hsum:
	VADDPS       Y6, Y0, Y0
	VADDPS       Y7, Y1, Y1
	VADDPS       Y8, Y2, Y2
	VADDPS       Y9, Y3, Y3
	VHADDPS      Y1, Y0, Y0 // per 128-bit lane: pair sums of Y0, then of Y1
	VHADDPS      Y3, Y2, Y2
	VHADDPS      Y2, Y0, Y0 // per lane: the sums of Y0..Y3's halves
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVUPS      X0, (R9)
	VZEROUPPER
	RET

// func axpy4AVX2(y *float32, stride int, x *float32, a *[4]float32, n int)
//
// y[j*stride+k] += a[j]·x[k] (fused), j < 4, k < n; n is a multiple of 8.
TEXT ·axpy4AVX2(SB), NOSPLIT, $0-40
	MOVQ         y+0(FP), DI
	MOVQ         stride+8(FP), DX
	SHLQ         $2, DX
	MOVQ         x+16(FP), SI
	MOVQ         a+24(FP), AX
	MOVQ         n+32(FP), CX
	VBROADCASTSS (AX), Y0
	VBROADCASTSS 4(AX), Y1
	VBROADCASTSS 8(AX), Y2
	VBROADCASTSS 12(AX), Y3
	LEAQ         (DI)(DX*1), R10
	LEAQ         (R10)(DX*1), R11
	LEAQ         (R11)(DX*1), R12
	XORQ         BX, BX

axpy:
	CMPQ        BX, CX
	JGE         axpydone
	VMOVUPS     (SI)(BX*4), Y4
	VMOVUPS     (DI)(BX*4), Y5
	VMOVUPS     (R10)(BX*4), Y6
	VMOVUPS     (R11)(BX*4), Y7
	VMOVUPS     (R12)(BX*4), Y8
	VFMADD231PS Y4, Y0, Y5
	VFMADD231PS Y4, Y1, Y6
	VFMADD231PS Y4, Y2, Y7
	VFMADD231PS Y4, Y3, Y8
	VMOVUPS     Y5, (DI)(BX*4)
	VMOVUPS     Y6, (R10)(BX*4)
	VMOVUPS     Y7, (R11)(BX*4)
	VMOVUPS     Y8, (R12)(BX*4)
	ADDQ        $8, BX
	JMP         axpy

axpydone:
	VZEROUPPER
	RET

// func reconstructAVX2(row, mem, p, q *float32, stride, rk, n int, inv, scale float32)
//
// For k < n: sum = Σ_j p[j]·q[j*stride+k], from zero, j = 0..rk-1 in order, every
// product rounded before its add (no fusing): the scalar loop's bits. mem[k] = row[k] -
// sum·inv; row[k] = sum·scale. 32 values a block, in four sums, so that the adds of one
// j need not wait for each other. n is a multiple of 32.
TEXT ·reconstructAVX2(SB), NOSPLIT, $0-64
	MOVQ         row+0(FP), DI
	MOVQ         mem+8(FP), R8
	MOVQ         p+16(FP), R9
	MOVQ         q+24(FP), R11
	MOVQ         stride+32(FP), DX
	SHLQ         $2, DX
	MOVQ         rk+40(FP), R12
	MOVQ         n+48(FP), CX
	VBROADCASTSS inv+56(FP), Y14
	VBROADCASTSS scale+60(FP), Y15
	XORQ         BX, BX

block:
	CMPQ   BX, CX
	JGE    recdone
	VXORPS Y0, Y0, Y0 // sums, k..k+7
	VXORPS Y1, Y1, Y1 // k+8..k+15
	VXORPS Y2, Y2, Y2 // k+16..k+23
	VXORPS Y3, Y3, Y3 // k+24..k+31
	LEAQ   (R11)(BX*4), AX
	XORQ   R13, R13

inner:
	VBROADCASTSS (R9)(R13*4), Y8
	VMULPS       (AX), Y8, Y4
	VMULPS       32(AX), Y8, Y5
	VMULPS       64(AX), Y8, Y6
	VMULPS       96(AX), Y8, Y7
	VADDPS       Y4, Y0, Y0
	VADDPS       Y5, Y1, Y1
	VADDPS       Y6, Y2, Y2
	VADDPS       Y7, Y3, Y3
	ADDQ         DX, AX
	INCQ         R13
	CMPQ         R13, R12
	JLT          inner

	LEAQ    (DI)(BX*4), SI
	LEAQ    (R8)(BX*4), R10
	VMULPS  Y14, Y0, Y4
	VMULPS  Y14, Y1, Y5
	VMULPS  Y14, Y2, Y6
	VMULPS  Y14, Y3, Y7
	VMOVUPS (SI), Y8
	VMOVUPS 32(SI), Y9
	VMOVUPS 64(SI), Y10
	VMOVUPS 96(SI), Y11
	VSUBPS  Y4, Y8, Y8
	VSUBPS  Y5, Y9, Y9
	VSUBPS  Y6, Y10, Y10
	VSUBPS  Y7, Y11, Y11
	VMOVUPS Y8, (R10)
	VMOVUPS Y9, 32(R10)
	VMOVUPS Y10, 64(R10)
	VMOVUPS Y11, 96(R10)
	VMULPS  Y15, Y0, Y0
	VMULPS  Y15, Y1, Y1
	VMULPS  Y15, Y2, Y2
	VMULPS  Y15, Y3, Y3
	VMOVUPS Y0, (SI)
	VMOVUPS Y1, 32(SI)
	VMOVUPS Y2, 64(SI)
	VMOVUPS Y3, 96(SI)
	ADDQ    $32, BX
	JMP     block

recdone:
	VZEROUPPER
	RET
