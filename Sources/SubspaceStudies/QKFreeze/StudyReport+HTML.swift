import SubspaceTraining
import Foundation
import SubspaceAnalysis

extension StudyReport {
    static let colors: [QKFreezeMode: String] = [.standard: "#1f77b4", .ortho: "#ff7f0e", .orthoFrozen: "#2ca02c"]
    /// Line styles too, so curves that lie on top of each other stay visible.
    static let dashes: [QKFreezeMode: String] = [.standard: "", .ortho: " stroke-dasharray=\"7 4\"", .orthoFrozen: " stroke-dasharray=\"2 3\""]

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A self-contained page: no scripts, no external files; the plots are inline SVG.
    public static func html(_ r: StudyResults) -> String {
        func table(_ header: [String], _ rows: [[String]], verdictColumn: Int? = nil) -> String {
            var out = "<table><thead><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead><tbody>\n"
            for row in rows {
                out += "<tr>" + row.enumerated().map { i, cell in
                    let cls = i == verdictColumn ? " class=\"\(cell == "PASS" ? "pass" : cell == "FAIL" ? "fail" : "na")\"" : ""
                    return "<td\(cls)>\(escape(cell))</td>"
                }.joined() + "</tr>\n"
            }
            return out + "</tbody></table>\n"
        }
        let seeds = r.study.seeds.count
        var body = "<h1>Q/K freeze study</h1>\n"
        if let command = r.command { body += "<p><code>\(escape(command))</code></p>\n" }
        body += "<ul><li>Model: \(escape(r.study.model))</li><li>Training: \(escape(r.study.training))</li><li>Data: \(escape(r.study.data))</li>"
        body += "<li>Plan: \(escape(r.plan.summary)); seeds \(r.study.seeds.map(String.init).joined(separator: ", ")); orthogonal Q/K \(escape(r.study.qkInit)), gain \(r.study.gain)</li>"
        body += "<li>\(escape(targetLine(r)))</li></ul>\n"
        body += "<h2>Verdict</h2>\n" + table(verdictHeader, verdictRows(r), verdictColumn: 4)
        body += "<h2>Groups\(seeds > 1 ? " (mean ± standard deviation over \(seeds) seeds)" : "")</h2>\n" + table(modeHeader, modeRows(r))
        body += "<h2>Plots</h2>\n<div class=\"plots\">\n"
        body += perplexityPlot(r) + efficiencyPlot(r) + throughputPlot(r) + "</div>\n"
        body += "<h2>Runs</h2>\n" + table(runHeader, runRows(r))
        body += "<h2>Notes</h2>\n<ul>" + notes.map { "<li>\(escape($0))</li>" }.joined() + "</ul>\n"
        return HTMLPage.document(title: "Q/K freeze study", body: body)
    }

    // MARK: Plots

    /// Plot geometry: a frame of `width`×`height` with margins; maps data to pixels.
    struct Frame {
        var width = 380.0, height = 280.0
        var left = 62.0, right = 14.0, top = 30.0, bottom = 44.0
        var x: ClosedRange<Double>, y: ClosedRange<Double>
        var logY = false

        func px(_ v: Double) -> Double {
            let span = x.upperBound - x.lowerBound
            return left + (span > 0 ? (v - x.lowerBound) / span : 0.5) * (width - left - right)
        }
        func py(_ v: Double) -> Double {
            let (lo, hi, w) = logY ? (log(y.lowerBound), log(y.upperBound), log(max(v, 1e-300))) : (y.lowerBound, y.upperBound, v)
            return top + (hi > lo ? (hi - w) / (hi - lo) : 0.5) * (height - top - bottom)
        }
    }

    /// About `count` round tick values covering `range`.
    static func ticks(_ range: ClosedRange<Double>, count: Int = 5) -> [Double] {
        let span = range.upperBound - range.lowerBound
        guard span > 0, span.isFinite else { return [range.lowerBound] }
        let raw = span / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var out: [Double] = []
        var v = ceil(range.lowerBound / step) * step
        while v <= range.upperBound + step * 1e-9 { out.append(v); v += step }
        return out
    }

    /// Tick values for a log axis: 1, 2, 5 × powers of ten inside the range (or linear ticks if few).
    static func logTicks(_ range: ClosedRange<Double>) -> [Double] {
        var out: [Double] = []
        var decade = pow(10, floor(log10(range.lowerBound)))
        while decade <= range.upperBound {
            for m in [1.0, 2, 5] where decade * m >= range.lowerBound && decade * m <= range.upperBound { out.append(decade * m) }
            decade *= 10
        }
        return out.count >= 3 ? out : ticks(range)
    }

    /// Tick labels with as many decimals as the spacing of the ticks needs (k and M for large values).
    static func labels(_ ticks: [Double]) -> [String] {
        let spacing = zip(ticks.dropFirst(), ticks).map { $0 - $1 }.filter { $0 > 0 }.min() ?? max(abs(ticks.first ?? 1), 1)
        let largest = ticks.map(abs).max() ?? 0
        if largest >= 1e6 && spacing >= 1e5 { return ticks.map { String(format: "%.1fM", $0 / 1e6) } }
        if largest >= 1e4 && spacing >= 1e3 { return ticks.map { String(format: "%.0fk", $0 / 1e3) } }
        // The fewest decimals that write the spacing exactly (0.25 needs two).
        let decimals = (0...6).first { d in
            let scaled = spacing * pow(10, Double(d))
            return abs(scaled - scaled.rounded()) < 1e-6 * max(1, scaled)
        } ?? 6
        return ticks.map { String(format: "%.\(decimals)f", $0) }
    }

    static func axes(_ f: Frame, title: String, xLabel: String, yLabel: String, xTicks: [Double]?, yTicks: [Double]) -> String {
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(f.width))\" height=\"\(Int(f.height))\" viewBox=\"0 0 \(Int(f.width)) \(Int(f.height))\">\n"
        s += "<text x=\"\(f.width / 2)\" y=\"18\" text-anchor=\"middle\" style=\"font-weight:bold;font-size:13px\">\(escape(title))</text>\n"
        let (x0, x1, y0, y1) = (f.left, f.width - f.right, f.top, f.height - f.bottom)
        s += "<rect x=\"\(x0)\" y=\"\(y0)\" width=\"\(x1 - x0)\" height=\"\(y1 - y0)\" fill=\"none\" stroke=\"#999\"/>\n"
        for (t, text) in zip(yTicks, labels(yTicks)) {
            let y = f.py(t)
            guard y >= y0 - 0.5, y <= y1 + 0.5 else { continue }
            s += "<line x1=\"\(x0)\" y1=\"\(y)\" x2=\"\(x1)\" y2=\"\(y)\" stroke=\"#eee\"/>"
            s += "<text x=\"\(x0 - 5)\" y=\"\(y + 4)\" text-anchor=\"end\">\(text)</text>\n"
        }
        let xs = xTicks ?? []
        for (t, text) in zip(xs, labels(xs)) {
            let x = f.px(t)
            guard x >= x0 - 0.5, x <= x1 + 0.5 else { continue }
            s += "<line x1=\"\(x)\" y1=\"\(y1)\" x2=\"\(x)\" y2=\"\(y1 + 4)\" stroke=\"#999\"/>"
            s += "<text x=\"\(x)\" y=\"\(y1 + 16)\" text-anchor=\"middle\">\(text)</text>\n"
        }
        s += "<text x=\"\((x0 + x1) / 2)\" y=\"\(f.height - 8)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text transform=\"translate(14 \((y0 + y1) / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        return s
    }

    static func legend(_ f: Frame, _ modes: [QKFreezeMode]) -> String {
        var s = ""
        for (i, m) in modes.enumerated() {
            let y = f.top + 12 + Double(i) * 15, x = f.width - f.right - 110
            s += "<line x1=\"\(x)\" y1=\"\(y - 4)\" x2=\"\(x + 18)\" y2=\"\(y - 4)\" stroke=\"\(colors[m]!)\" stroke-width=\"2.5\"\(dashes[m]!)/>"
            s += "<text x=\"\(x + 23)\" y=\"\(y)\">\(m.rawValue)</text>\n"
        }
        return s
    }

    static func empty(_ title: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"380\" height=\"280\"><text x=\"190\" y=\"140\" text-anchor=\"middle\">\(escape(title)): no data</text></svg>\n"
    }

    /// Validation perplexity against step, log scale: each seed thin, the mean over seeds thick.
    static func perplexityPlot(_ r: StudyResults) -> String {
        let all = r.groups.flatMap(\.validationPerplexity)
        guard let minV = all.map(\.value).min(), let maxV = all.map(\.value).max(), let maxStep = all.map(\.step).max() else {
            return empty("Validation perplexity")
        }
        let lo = minV * 0.95, hi = max(maxV * 1.05, lo * 1.01)
        let f = Frame(x: 0...Double(max(maxStep, 1)), y: lo...hi, logY: hi / lo > 4)
        var s = axes(f, title: "Validation perplexity", xLabel: "step", yLabel: "perplexity" + (f.logY ? " (log)" : ""),
                     xTicks: ticks(f.x), yTicks: f.logY ? logTicks(f.y) : ticks(f.y))
        func path(_ points: [(Int, Double)]) -> String {
            points.enumerated().map { i, p in "\(i == 0 ? "M" : "L")\(String(format: "%.1f", f.px(Double(p.0)))),\(String(format: "%.1f", f.py(p.1)))" }.joined(separator: " ")
        }
        if r.study.seeds.count > 1 {
            for g in r.groups where !g.validationPerplexity.isEmpty {
                s += "<path d=\"\(path(g.validationPerplexity.map { ($0.step, $0.value) }))\" fill=\"none\" stroke=\"\(colors[g.mode]!)\" stroke-width=\"0.8\" opacity=\"0.35\"/>\n"
            }
        }
        for (mode, curve) in meanCurves(r) where !curve.isEmpty {
            s += "<path d=\"\(path(curve.map { ($0.step, $0.value) }))\" fill=\"none\" stroke=\"\(colors[mode]!)\" stroke-width=\"2\"\(dashes[mode]!)/>\n"
            for p in curve { s += "<circle cx=\"\(String(format: "%.1f", f.px(Double(p.step))))\" cy=\"\(String(format: "%.1f", f.py(p.value)))\" r=\"2.2\" fill=\"\(colors[mode]!)\"/>" }
            s += "\n"
        }
        if let t = r.targetPerplexity, t >= lo, t <= hi {
            s += "<line x1=\"\(f.left)\" y1=\"\(f.py(t))\" x2=\"\(f.width - f.right)\" y2=\"\(f.py(t))\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>"
            s += "<text x=\"\(f.left + 4)\" y=\"\(f.py(t) - 4)\" style=\"fill:#666\">target \(String(format: "%.2f", t))</text>\n"
        }
        return s + legend(f, r.summaries.map(\.mode)) + "</svg>\n"
    }

    /// Trainable parameters against final validation perplexity, mean ± std over seeds.
    static func efficiencyPlot(_ r: StudyResults) -> String {
        let points = r.summaries.compactMap { s -> (QKFreezeMode, Double, Statistic)? in
            s.finalPerplexity.map { (s.mode, Double(s.parameters.trainable), $0) }
        }
        guard !points.isEmpty else { return empty("Parameter efficiency") }
        let xs = points.map(\.1), lows = points.map { $0.2.mean - $0.2.std }, highs = points.map { $0.2.mean + $0.2.std }
        let xPad = max((xs.max()! - xs.min()!) * 0.25, xs.max()! * 0.02)
        let yPad = max((highs.max()! - lows.min()!) * 0.25, highs.max()! * 0.01)
        let f = Frame(left: 62, x: (xs.min()! - xPad)...(xs.max()! + xPad), y: (lows.min()! - yPad)...(highs.max()! + yPad))
        var s = axes(f, title: "Parameter efficiency", xLabel: "trainable parameters", yLabel: "final validation perplexity",
                     xTicks: ticks(f.x, count: 4), yTicks: ticks(f.y))
        for (mode, x, stat) in points {
            let (cx, cy) = (f.px(x), f.py(stat.mean))
            if stat.std > 0 {
                s += "<line x1=\"\(cx)\" y1=\"\(f.py(stat.mean - stat.std))\" x2=\"\(cx)\" y2=\"\(f.py(stat.mean + stat.std))\" stroke=\"\(colors[mode]!)\" stroke-width=\"1.5\"/>"
            }
            s += "<circle cx=\"\(cx)\" cy=\"\(cy)\" r=\"5\" fill=\"\(colors[mode]!)\"/>"
            s += "<text x=\"\(cx + 8)\" y=\"\(cy - 6)\">\(mode.rawValue)</text>\n"
        }
        return s + "</svg>\n"
    }

    /// Tokens per second per mode, mean with a ± std whisker.
    static func throughputPlot(_ r: StudyResults) -> String {
        let bars = r.summaries.compactMap { s in s.tokensPerSecond.map { (s.mode, $0) } }
        guard let top = bars.map({ $0.1.mean + $0.1.std }).max(), top > 0 else { return empty("Throughput") }
        let f = Frame(x: 0...Double(bars.count), y: 0...(top * 1.15))
        var s = axes(f, title: "Throughput", xLabel: "", yLabel: "tokens/s", xTicks: nil, yTicks: ticks(f.y))
        let slot = (f.width - f.left - f.right) / Double(bars.count)
        for (i, (mode, stat)) in bars.enumerated() {
            let x = f.left + slot * (Double(i) + 0.2), w = slot * 0.6
            let y = f.py(stat.mean), base = f.py(0)
            s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(w)\" height=\"\(base - y)\" fill=\"\(colors[mode]!)\"/>"
            if stat.std > 0 {
                let cx = x + w / 2
                s += "<line x1=\"\(cx)\" y1=\"\(f.py(stat.mean - stat.std))\" x2=\"\(cx)\" y2=\"\(f.py(stat.mean + stat.std))\" stroke=\"#333\"/>"
            }
            s += "<text x=\"\(x + w / 2)\" y=\"\(y - 5)\" text-anchor=\"middle\">\(String(format: "%.0f", stat.mean))</text>"
            s += "<text x=\"\(x + w / 2)\" y=\"\(base + 16)\" text-anchor=\"middle\">\(mode.rawValue)</text>\n"
        }
        return s + "</svg>\n"
    }
}
