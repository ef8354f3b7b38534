import Foundation

/// Lines (or points) against shared axes, linear or log₁₀ in y (and x), with a legend at the right.
public struct LineChart: Sendable {
    public struct Series: Sendable {
        public var label: String
        public var color: String
        public var points: [(x: Double, y: Double)]
        public var dash: String?
        public var width: Double
        public var opacity: Double
        public var markers: Bool
        /// Thin background series (e.g. one per layer) stay out of the legend.
        public var inLegend: Bool
        /// A shaded band around the line (e.g. mean ± std over seeds): (x, lower, upper) per point.
        public var band: [(x: Double, lower: Double, upper: Double)] = []

        public init(label: String, color: String, points: [(x: Double, y: Double)], dash: String? = nil,
                    width: Double = 1.8, opacity: Double = 1, markers: Bool = false, inLegend: Bool = true) {
            self.label = label
            self.color = color
            self.points = points
            self.dash = dash
            self.width = width
            self.opacity = opacity
            self.markers = markers
            self.inLegend = inLegend
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series] = []
    public var logX = false
    public var logY = false
    public var xRange: ClosedRange<Double>?
    public var yRange: ClosedRange<Double>?
    /// Tick positions on x instead of round numbers (e.g. the ranks of a rank study).
    public var xTicks: [Double]?
    /// Dashed reference lines with a label.
    public var verticalLines: [(x: Double, label: String)] = []
    public var horizontalLines: [(y: Double, label: String)] = []
    /// Extra legend lines (e.g. what solid and dashed mean).
    public var notes: [String] = []
    public var width: Double = 760
    public var height: Double = 460

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    public func render() -> SVGDocument {
        var svg = SVGDocument(width: width, height: height)
        let (left, right, top, bottom) = (72.0, 200.0, 42.0, 56.0)
        let (plotW, plotH) = (width - left - right, height - top - bottom)
        svg.text(left + plotW / 2, 24, title, anchor: .middle, size: 15, weight: "bold")

        func usable(_ p: (x: Double, y: Double)) -> Bool {
            p.x.isFinite && p.y.isFinite && (!logX || p.x > 0) && (!logY || p.y > 0)
        }
        let all = series.flatMap { $0.points.filter(usable) }
        let xs = all.map(\.x) + verticalLines.map(\.x).filter { !logX || $0 > 0 }
        let ys = all.map(\.y) + horizontalLines.map(\.y).filter { !logY || $0 > 0 }
        var (x0, x1) = xRange.map { ($0.lowerBound, $0.upperBound) } ?? (xs.min() ?? 0, xs.max() ?? 1)
        var (y0, y1) = yRange.map { ($0.lowerBound, $0.upperBound) } ?? (ys.min() ?? 0, ys.max() ?? 1)
        if logX { (x0, x1) = (max(x0, 1e-300), max(x1, 1e-300)) }
        if logY {
            (y0, y1) = (max(y0, 1e-300), max(y1, 1e-300))
            if yRange == nil { (y0, y1) = (pow(10, floor(log10(y0))), pow(10, ceil(log10(y1)))) }
        } else if yRange == nil {
            let pad = (y1 - y0) * 0.05
            (y0, y1) = (y0 - pad, y1 + pad)
        }
        if x1 <= x0 { (x0, x1) = logX ? (x0 / 2, x0 * 2) : (x0 - 0.5, x0 + 0.5) }
        if y1 <= y0 { (y0, y1) = logY ? (y0 / 10, y0 * 10) : (y0 - 0.5, y0 + 0.5) }
        func tx(_ x: Double) -> Double {
            left + plotW * (logX ? (log10(x) - log10(x0)) / (log10(x1) - log10(x0)) : (x - x0) / (x1 - x0))
        }
        func ty(_ y: Double) -> Double {
            top + plotH * (1 - (logY ? (log10(y) - log10(y0)) / (log10(y1) - log10(y0)) : (y - y0) / (y1 - y0)))
        }

        // Grid, ticks and axes.
        let yTicks = logY ? Ticks.logarithmic(y0, y1) : Ticks.linear(y0, y1)
        for t in yTicks where t >= y0 && t <= y1 {
            svg.line(left, ty(t), left + plotW, ty(t), stroke: "#e0e0e0")
            svg.text(left - 6, ty(t) + 4, Ticks.label(t), anchor: .end, size: 11)
        }
        let xTicks = self.xTicks ?? (logX ? Ticks.logarithmic(x0, x1) : Ticks.linear(x0, x1))
        for t in xTicks where t >= x0 && t <= x1 {
            svg.line(tx(t), top, tx(t), top + plotH, stroke: "#f0f0f0")
            svg.text(tx(t), top + plotH + 16, Ticks.label(t), anchor: .middle, size: 11)
        }
        svg.line(left, top + plotH, left + plotW, top + plotH, stroke: "#333333")
        svg.line(left, top, left, top + plotH, stroke: "#333333")
        svg.text(left + plotW / 2, height - 14, xLabel + (logX ? " (log scale)" : ""), anchor: .middle, size: 12)
        svg.text(18, top + plotH / 2, yLabel + (logY ? " (log scale)" : ""), anchor: .middle, size: 12, rotate: -90)

        for v in verticalLines where (!logX || v.x > 0) && v.x >= x0 && v.x <= x1 {
            svg.line(tx(v.x), top, tx(v.x), top + plotH, stroke: "#555555", dash: "4 3")
            svg.text(tx(v.x) + 4, top + plotH - 6, v.label, size: 10, fill: "#555555")
        }
        for h in horizontalLines where (!logY || h.y > 0) && h.y >= y0 && h.y <= y1 {
            svg.line(left, ty(h.y), left + plotW, ty(h.y), stroke: "#555555", dash: "4 3")
            svg.text(left + 4, ty(h.y) - 4, h.label, size: 10, fill: "#555555")
        }

        // Series: background ones first.
        for s in series.sorted(by: { !$0.inLegend && $1.inLegend }) {
            let points = s.points.filter(usable).filter { $0.x >= x0 && $0.x <= x1 }
                .map { (tx($0.x), min(max(ty($0.y), top), top + plotH)) }
            let band = s.band.filter { usable(($0.x, $0.lower)) && usable(($0.x, $0.upper)) && $0.x >= x0 && $0.x <= x1 }
            if band.count >= 2 {
                let clamp = { (y: Double) in min(max(ty(y), top), top + plotH) }
                let outline = band.map { (tx($0.x), clamp($0.upper)) } + band.reversed().map { (tx($0.x), clamp($0.lower)) }
                svg.polygon(outline, fill: s.color, opacity: 0.18)
            }
            svg.polyline(points, stroke: s.color, width: s.width, dash: s.dash, opacity: s.opacity)
            if s.markers || points.count == 1 { for p in points { svg.circle(p.0, p.1, r: 2.8, fill: s.color) } }
        }

        // Legend.
        let entries = series.filter(\.inLegend)
        let maxEntries = Int((plotH - 16 * Double(notes.count)) / 18)
        var y = top + 8
        let lx = left + plotW + 16
        for s in entries.prefix(max(0, maxEntries)) {
            svg.line(lx, y, lx + 22, y, stroke: s.color, width: max(s.width, 2), dash: s.dash)
            if s.markers { svg.circle(lx + 11, y, r: 2.8, fill: s.color) }
            svg.text(lx + 28, y + 4, s.label, size: 11)
            y += 18
        }
        if entries.count > max(0, maxEntries) {
            svg.text(lx, y + 4, "… \(entries.count - max(0, maxEntries)) more", size: 11, fill: "#555555")
            y += 18
        }
        for note in notes {
            svg.text(lx, y + 4, note, size: 10, fill: "#555555")
            y += 16
        }
        return svg
    }
}

/// Grouped vertical bars: one group of bars per category, one colour per series.
public struct BarChart: Sendable {
    public struct Series: Sendable {
        public var label: String
        public var color: String
        /// One value per category; nil leaves a gap.
        public var values: [Double?]

        public init(label: String, color: String, values: [Double?]) {
            self.label = label
            self.color = color
            self.values = values
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var categories: [String] = []
    public var series: [Series] = []
    public var yRange: ClosedRange<Double>?
    public var horizontalLines: [(y: Double, label: String)] = []
    public var width: Double = 760
    public var height: Double = 460

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    public func render() -> SVGDocument {
        let rotate = categories.count > 8 || (categories.map(\.count).max() ?? 0) > 10
        let labelRoom = rotate ? min(160, 7.0 * Double(categories.map(\.count).max() ?? 4) * 0.75 + 20) : 20
        let w = max(width, 200 + Double(categories.count * max(series.count, 1)) * 6 + 272)
        var svg = SVGDocument(width: w, height: height + labelRoom)
        let (left, right, top, bottom) = (72.0, 200.0, 42.0, 36.0 + labelRoom)
        let (plotW, plotH) = (w - left - right, height + labelRoom - top - bottom)
        svg.text(left + plotW / 2, 24, title, anchor: .middle, size: 15, weight: "bold")

        let values = series.flatMap { $0.values.compactMap { $0 } }.filter(\.isFinite)
        var (y0, y1) = yRange.map { ($0.lowerBound, $0.upperBound) } ?? (min(0, values.min() ?? 0), max(values.max() ?? 1, horizontalLines.map(\.y).max() ?? 0) * 1.08)
        if y1 <= y0 { y1 = y0 + 1 }
        func ty(_ y: Double) -> Double { top + plotH * (1 - (y - y0) / (y1 - y0)) }
        for t in Ticks.linear(y0, y1) where t >= y0 && t <= y1 {
            svg.line(left, ty(t), left + plotW, ty(t), stroke: "#e0e0e0")
            svg.text(left - 6, ty(t) + 4, Ticks.label(t), anchor: .end, size: 11)
        }
        let slot = plotW / Double(max(categories.count, 1))
        let barW = slot * 0.8 / Double(max(series.count, 1))
        for (c, name) in categories.enumerated() {
            let x = left + slot * Double(c) + slot * 0.1
            for (s, serie) in series.enumerated() {
                guard c < serie.values.count, let v = serie.values[c], v.isFinite else { continue }
                let (ya, yb) = (ty(max(v, y0)), ty(max(0, y0)))
                svg.rect(x + barW * Double(s), min(ya, yb), barW, abs(yb - ya), fill: serie.color,
                         title: "\(serie.label) · \(name): \(Ticks.label((v * 1e4).rounded() / 1e4))")
            }
            let cx = left + slot * (Double(c) + 0.5)
            if rotate {
                svg.text(cx, top + plotH + 12, name, anchor: .end, size: 10, rotate: -45)
            } else {
                svg.text(cx, top + plotH + 16, name, anchor: .middle, size: 11)
            }
        }
        for h in horizontalLines where h.y >= y0 && h.y <= y1 {
            svg.line(left, ty(h.y), left + plotW, ty(h.y), stroke: "#555555", dash: "4 3")
            svg.text(left + plotW - 4, ty(h.y) - 4, h.label, anchor: .end, size: 10, fill: "#555555")
        }
        svg.line(left, ty(max(0, y0)), left + plotW, ty(max(0, y0)), stroke: "#333333")
        svg.line(left, top, left, top + plotH, stroke: "#333333")
        svg.text(left + plotW / 2, height + labelRoom - 10, xLabel, anchor: .middle, size: 12)
        svg.text(18, top + plotH / 2, yLabel, anchor: .middle, size: 12, rotate: -90)
        var y = top + 8
        let lx = left + plotW + 16
        for s in series {
            svg.rect(lx, y - 6, 14, 12, fill: s.color)
            svg.text(lx + 20, y + 4, s.label, size: 11)
            y += 18
        }
        return svg
    }
}

/// A grid of cells coloured by value on a sequential scale, with a colour bar as legend.
public struct Heatmap: Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var rowLabels: [String] = []
    public var columnLabels: [String] = []
    /// values[row][column]; nil cells are grey ("n/a").
    public var values: [[Double?]] = []
    public var range: ClosedRange<Double> = 0...1
    /// The colour bar's title.
    public var valueLabel: String
    public var showValues = true

    public init(title: String, xLabel: String, yLabel: String, valueLabel: String) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.valueLabel = valueLabel
    }

    public func render() -> SVGDocument {
        let rows = rowLabels.count, cols = columnLabels.count
        let cellW = max(36.0, min(80.0, 640.0 / Double(max(cols, 1))))
        let cellH = max(10.0, min(26.0, 700.0 / Double(max(rows, 1))))
        let (left, top, right, bottom) = (90.0, 48.0, 150.0, 64.0)
        let (plotW, plotH) = (cellW * Double(cols), cellH * Double(rows))
        let width = max(left + plotW + right, 420), height = top + max(plotH + bottom, 150)
        var svg = SVGDocument(width: width, height: height)
        svg.text(width / 2, 24, title, anchor: .middle, size: 15, weight: "bold")
        let span = range.upperBound - range.lowerBound
        for r in 0..<rows {
            for c in 0..<cols {
                let (x, y) = (left + cellW * Double(c), top + cellH * Double(r))
                let v = c < values[r].count ? values[r][c] : nil
                if let v, v.isFinite {
                    let t = span > 0 ? (v - range.lowerBound) / span : 0
                    svg.rect(x, y, cellW, cellH, fill: Palette.sequential(t), stroke: "#ffffff",
                             title: "\(rowLabels[r]) · \(columnLabels[c]): \(String(format: "%.4f", v))")
                    if showValues && cellH >= 14 {
                        svg.text(x + cellW / 2, y + cellH / 2 + 4, String(format: "%.2f", v), anchor: .middle, size: 10,
                                 fill: t > 0.6 ? "#000000" : "#ffffff")
                    }
                } else {
                    svg.rect(x, y, cellW, cellH, fill: "#dddddd", stroke: "#ffffff", title: "\(rowLabels[r]) · \(columnLabels[c]): n/a")
                }
            }
            if cellH >= 10 && (rows <= 40 || r % max(1, rows / 40) == 0) {
                svg.text(left - 6, top + cellH * (Double(r) + 0.5) + 4, rowLabels[r], anchor: .end, size: 10)
            }
        }
        for c in 0..<cols {
            svg.text(left + cellW * (Double(c) + 0.5), top + plotH + 16, columnLabels[c], anchor: .middle, size: 11)
        }
        svg.text(left + plotW / 2, top + plotH + 40, xLabel, anchor: .middle, size: 12)
        svg.text(18, top + plotH / 2, yLabel, anchor: .middle, size: 12, rotate: -90)

        // Colour bar.
        let (bx, barH) = (left + plotW + 30, max(plotH, 120))
        let steps = 40
        for i in 0..<steps {
            let t = Double(i) / Double(steps - 1)
            svg.rect(bx, top + barH * (1 - Double(i + 1) / Double(steps)), 16, barH / Double(steps) + 0.5, fill: Palette.sequential(t))
        }
        for t in Ticks.linear(range.lowerBound, range.upperBound, count: 5) where t >= range.lowerBound && t <= range.upperBound {
            let y = top + barH * (1 - (span > 0 ? (t - range.lowerBound) / span : 0))
            svg.line(bx + 16, y, bx + 20, y, stroke: "#333333")
            svg.text(bx + 23, y + 4, Ticks.label(t), size: 10)
        }
        svg.text(bx + 8, top - 8, valueLabel, anchor: .middle, size: 11)
        return svg
    }
}
