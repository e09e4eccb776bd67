package model

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// activation is config.json's hidden_act as transformers' ACT2FN defines it. Each takes
// ownership of its input.
func activation(name string) (func(*ts.Tensor) *ts.Tensor, error) {
	switch name {
	case "gelu", "gelu_python":
		return func(x *ts.Tensor) *ts.Tensor { return x.MustGelu("none", true) }, nil
	case "gelu_new", "gelu_fast", "gelu_pytorch_tanh": // the tanh approximation
		return func(x *ts.Tensor) *ts.Tensor { return x.MustGelu("tanh", true) }, nil
	case "quick_gelu": // x * sigmoid(1.702 x)
		return func(x *ts.Tensor) *ts.Tensor {
			s := x.MustMulScalar(ts.FloatScalar(1.702), false).MustSigmoid(true)
			return x.MustMul(s, true)
		}, nil
	case "relu":
		return func(x *ts.Tensor) *ts.Tensor { return x.MustRelu(true) }, nil
	case "relu6":
		return func(x *ts.Tensor) *ts.Tensor { return x.MustClamp(ts.FloatScalar(0), ts.FloatScalar(6), true) }, nil
	case "silu", "swish":
		return func(x *ts.Tensor) *ts.Tensor { return x.MustSilu(true) }, nil
	case "mish":
		return func(x *ts.Tensor) *ts.Tensor { return x.MustMish(true) }, nil
	case "tanh":
		return func(x *ts.Tensor) *ts.Tensor { return x.MustTanh(true) }, nil
	case "sigmoid":
		return func(x *ts.Tensor) *ts.Tensor { return x.MustSigmoid(true) }, nil
	case "linear":
		return func(x *ts.Tensor) *ts.Tensor { return x }, nil
	}
	return nil, fmt.Errorf("model: hidden_act %q is not supported", name)
}
