//go:build amd64 && !purego

#include "textflag.h"

// The half codecs' loops, bit for bit what codec_half.go's scalar functions compute.
// Operand order is Go's: VPADDD a, b, c is c = b + a; VPCMPGTD a, b, c is c = b > a;
// VPANDN a, b, c is c = ^b & a; VPBLENDVB m, a, b, c is c = m ? a : b (per byte).
// fp16 uses F16C (round to nearest even, as the scalar rounds) and then gives NaNs the
// scalar's bits: F16C keeps a NaN's payload and quiets it, the scalar does neither.

// BCAST broadcasts a 32-bit constant to all lanes of Y.
#define BCAST(c, X, Y) MOVL c, AX; VMOVD AX, X; VPBROADCASTD X, Y

// NANMASK sets m to all ones in the lanes of u (float32 bits) that hold a NaN: |u| > Inf.
// Needs Y13 = 0x7fffffff, Y12 = 0x7f800000.
#define NANMASK(u, m) VPAND Y13, u, m; VPCMPGTD Y12, m, m

// BF16ROUND replaces the float32 bits in u by bf16FromF32's result in the high half of
// each lane, with junk in the low half: NaN keeps its top bits and gains the quiet bit,
// anything else rounds to nearest even. Needs Y15 = 0x10000, Y14 = 0x7fff, Y11 =
// 0x400000, Y13 and Y12; t1, t2 are scratch. The rounding: u + 0x7fff + the result's
// lsb (bit 16), so that a tie carries only into an odd result.
#define BF16ROUND(u, t1, t2) VPAND Y15, u, t1; VPSRLD $16, t1, t1; VPADDD Y14, t1, t1; VPADDD u, t1, t1; VPOR Y11, u, t2; NANMASK(u, u); VPBLENDVB u, t2, t1, u

// func bf16EncodeAVX2(dst *byte, src *float32, n int)
//
// n is a multiple of 16.
TEXT ·bf16EncodeAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	BCAST($0x10000, X15, Y15)
	BCAST($0x7fff, X14, Y14)
	BCAST($0x7fffffff, X13, Y13)
	BCAST($0x7f800000, X12, Y12)
	BCAST($0x400000, X11, Y11)
	XORQ BX, BX

bfenc:
	CMPQ      BX, CX
	JGE       bfencdone
	VMOVDQU   (SI)(BX*4), Y0
	VMOVDQU   32(SI)(BX*4), Y1
	BF16ROUND(Y0, Y2, Y3)
	BF16ROUND(Y1, Y4, Y5)
	VPSRLD    $16, Y0, Y0
	VPSRLD    $16, Y1, Y1
	VPACKUSDW Y1, Y0, Y0    // words, per 128-bit lane: Y0's four, then Y1's
	VPERMQ    $0xd8, Y0, Y0 // back in order
	VMOVDQU   Y0, (DI)(BX*2)
	ADDQ      $16, BX
	JMP       bfenc

bfencdone:
	VZEROUPPER
	RET

// func bf16QuantizeAVX2(v *float32, n int)
//
// v = bf16ToF32(bf16FromF32(v)); n is a multiple of 8.
TEXT ·bf16QuantizeAVX2(SB), NOSPLIT, $0-16
	MOVQ v+0(FP), DI
	MOVQ n+8(FP), CX
	BCAST($0x10000, X15, Y15)
	BCAST($0x7fff, X14, Y14)
	BCAST($0x7fffffff, X13, Y13)
	BCAST($0x7f800000, X12, Y12)
	BCAST($0x400000, X11, Y11)
	XORQ BX, BX

bfq:
	CMPQ      BX, CX
	JGE       bfqdone
	VMOVDQU   (DI)(BX*4), Y0
	BF16ROUND(Y0, Y2, Y3)
	VPSRLD    $16, Y0, Y0
	VPSLLD    $16, Y0, Y0
	VMOVDQU   Y0, (DI)(BX*4)
	ADDQ      $8, BX
	JMP       bfq

bfqdone:
	VZEROUPPER
	RET

// func bf16DecodeAVX2(dst *float32, src *byte, n int, add bool)
//
// dst = (add ? dst + : ) bf16ToF32(src); n is a multiple of 16. The add takes the
// decoded value as its first operand, as the compiled scalar loop does: when both are
// NaNs, the first one survives (quieted). TestHalfVectorMatchesScalar checks that.
TEXT ·bf16DecodeAVX2(SB), NOSPLIT, $0-25
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVB add+24(FP), DX
	XORQ BX, BX
	TESTB DX, DX
	JNZ   bfadd

bfdec:
	CMPQ      BX, CX
	JGE       bfdecdone
	VPMOVZXWD (SI)(BX*2), Y0
	VPMOVZXWD 16(SI)(BX*2), Y1
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VMOVDQU   Y0, (DI)(BX*4)
	VMOVDQU   Y1, 32(DI)(BX*4)
	ADDQ      $16, BX
	JMP       bfdec

bfadd:
	CMPQ      BX, CX
	JGE       bfdecdone
	VPMOVZXWD (SI)(BX*2), Y0
	VPMOVZXWD 16(SI)(BX*2), Y1
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VADDPS    (DI)(BX*4), Y0, Y0
	VADDPS    32(DI)(BX*4), Y1, Y1
	VMOVUPS   Y0, (DI)(BX*4)
	VMOVUPS   Y1, 32(DI)(BX*4)
	ADDQ      $16, BX
	JMP       bfadd

bfdecdone:
	VZEROUPPER
	RET

// func fp16EncodeAVX2(dst *byte, src *float32, n int)
//
// n is a multiple of 16. A NaN becomes sign|0x7e00: F16C's sign|0x7e00|payload with the
// payload (the low 9 bits) cleared.
TEXT ·fp16EncodeAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	BCAST($0x7fffffff, X13, Y13)
	BCAST($0x7f800000, X12, Y12)
	BCAST($0x01ff01ff, X11, Y11)
	XORQ BX, BX

fpenc:
	CMPQ        BX, CX
	JGE         fpencdone
	VMOVUPS     (SI)(BX*4), Y0
	VMOVUPS     32(SI)(BX*4), Y1
	VCVTPS2PH   $0, Y0, X2
	VCVTPS2PH   $0, Y1, X3
	VINSERTI128 $1, X3, Y2, Y2
	NANMASK(Y0, Y4)
	NANMASK(Y1, Y5)
	VPACKSSDW   Y5, Y4, Y4    // the masks as words, per 128-bit lane
	VPERMQ      $0xd8, Y4, Y4 // in order
	VPAND       Y11, Y4, Y4
	VPANDN      Y2, Y4, Y2    // clear the NaNs' payloads
	VMOVDQU     Y2, (DI)(BX*2)
	ADDQ        $16, BX
	JMP         fpenc

fpencdone:
	VZEROUPPER
	RET

// func fp16QuantizeAVX2(v *float32, n int)
//
// v = fp16ToF32(fp16FromF32(v)); n is a multiple of 8. A NaN becomes sign|0x7fc00000.
TEXT ·fp16QuantizeAVX2(SB), NOSPLIT, $0-16
	MOVQ v+0(FP), DI
	MOVQ n+8(FP), CX
	BCAST($0x7fffffff, X13, Y13)
	BCAST($0x7f800000, X12, Y12)
	BCAST($0x003fffff, X11, Y11)
	XORQ BX, BX

fpq:
	CMPQ      BX, CX
	JGE       fpqdone
	VMOVUPS   (DI)(BX*4), Y0
	VCVTPS2PH $0, Y0, X1
	VCVTPH2PS X1, Y1
	NANMASK(Y0, Y2)
	VPAND     Y11, Y2, Y2
	VPANDN    Y1, Y2, Y1
	VMOVUPS   Y1, (DI)(BX*4)
	ADDQ      $8, BX
	JMP       fpq

fpqdone:
	VZEROUPPER
	RET

// func fp16DecodeAVX2(dst *float32, src *byte, n int, add bool)
//
// dst = (add ? dst + : ) fp16ToF32(src); n is a multiple of 16. Stored, a NaN keeps
// the quiet bit it had (F16C sets it); added, it is quieted by the add either way.
TEXT ·fp16DecodeAVX2(SB), NOSPLIT, $0-25
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVB add+24(FP), DX
	BCAST($0x7fffffff, X13, Y13)
	BCAST($0x7f800000, X12, Y12)
	BCAST($0x00400000, X11, Y11)
	XORQ BX, BX
	TESTB DX, DX
	JNZ   fpadd

fpdec:
	CMPQ      BX, CX
	JGE       fpdecdone
	VCVTPH2PS (SI)(BX*2), Y0
	VCVTPH2PS 16(SI)(BX*2), Y1
	VPMOVZXWD (SI)(BX*2), Y2
	VPMOVZXWD 16(SI)(BX*2), Y3
	VPSLLD    $13, Y2, Y2
	VPSLLD    $13, Y3, Y3
	VPANDN    Y11, Y2, Y2     // the quiet bit, where the half's was clear
	VPANDN    Y11, Y3, Y3
	NANMASK(Y0, Y4)
	NANMASK(Y1, Y5)
	VPAND     Y4, Y2, Y2
	VPAND     Y5, Y3, Y3
	VPXOR     Y2, Y0, Y0      // cleared in NaNs that were signalling
	VPXOR     Y3, Y1, Y1
	VMOVUPS   Y0, (DI)(BX*4)
	VMOVUPS   Y1, 32(DI)(BX*4)
	ADDQ      $16, BX
	JMP       fpdec

fpadd:
	CMPQ      BX, CX
	JGE       fpdecdone
	VCVTPH2PS (SI)(BX*2), Y0
	VCVTPH2PS 16(SI)(BX*2), Y1
	VADDPS    (DI)(BX*4), Y0, Y0
	VADDPS    32(DI)(BX*4), Y1, Y1
	VMOVUPS   Y0, (DI)(BX*4)
	VMOVUPS   Y1, 32(DI)(BX*4)
	ADDQ      $16, BX
	JMP       fpadd

fpdecdone:
	VZEROUPPER
	RET
