import Foundation

/// GELU, tanh approximation (GPT-2's `gelu_new`): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
public enum GELU {
    static let k: Float = (2 / Float.pi).squareRoot()

    /// - out, inp: [count]
    public static func forward(out: FloatPointer, inp: ConstFloatPointer, count: Int) {
        let k = Self.k
        Parallel.rows(count, minimumPerChunk: 16384) { r in
            for i in r {
                let x = inp[i]
                out[i] = 0.5 * x * (1 + FastMath.tanh(k * (x + 0.044715 * x * x * x)))
            }
        }
    }

    /// dinp += dout · gelu'(inp)
    public static func backward(dinp: FloatPointer, inp: ConstFloatPointer, dout: ConstFloatPointer, count: Int) {
        let k = Self.k
        Parallel.rows(count, minimumPerChunk: 16384) { r in
            for i in r {
                let x = inp[i]
                let t = FastMath.tanh(k * (x + 0.044715 * x * x * x))
                let sech2 = 1 - t * t
                let grad = 0.5 * (1 + t) + 0.5 * x * sech2 * k * (1 + 3 * 0.044715 * x * x)
                dinp[i] += grad * dout[i]
            }
        }
    }
}

/// SwiGLU (Llama's MLP): out = silu(gate) · up, with gate|up side by side in one [N, 2·I] activation.
public enum SwiGLU {
    /// - out: [N, I]; gateUp: [N, 2I] (gate in the first I columns, up in the next I)
    public static func forward(out: FloatPointer, gateUp: ConstFloatPointer, N: Int, I: Int) {
        Parallel.rows(N, minimumPerChunk: 16) { rows in
            for n in rows {
                let g = gateUp + n * 2 * I, u = g + I, o = out + n * I
                for i in 0..<I { o[i] = g[i] * FastMath.sigmoid(g[i]) * u[i] }
            }
        }
    }

    /// dgateUp += ∂L/∂(gate|up)
    public static func backward(dgateUp: FloatPointer, gateUp: ConstFloatPointer, dout: ConstFloatPointer, N: Int, I: Int) {
        Parallel.rows(N, minimumPerChunk: 16) { rows in
            for n in rows {
                let g = gateUp + n * 2 * I, u = g + I, d = dout + n * I
                let dg = dgateUp + n * 2 * I, du = dg + I
                for i in 0..<I {
                    let s = FastMath.sigmoid(g[i])
                    du[i] += d[i] * g[i] * s
                    dg[i] += d[i] * u[i] * s * (1 + g[i] * (1 - s))
                }
            }
        }
    }
}
