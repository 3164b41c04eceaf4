namespace Ebp.Datasets;

/// <summary>
/// An axis-aligned pixel rectangle in 0-based image coordinates. <see cref="X"/>, <see cref="Y"/> are the
/// column and row of the top-left pixel (inclusive); the box covers columns X .. X+Width-1 and rows
/// Y .. Y+Height-1, so <see cref="Right"/> and <see cref="Bottom"/> are exclusive ends.
/// (PASCAL VOC's 1-based inclusive boxes convert with <see cref="VocBox"/>.)
/// </summary>
public readonly record struct BoundingBox(int X, int Y, int Width, int Height)
{
    /// <summary>Exclusive right end: X + Width.</summary>
    public int Right => X + Width;

    /// <summary>Exclusive bottom end: Y + Height.</summary>
    public int Bottom => Y + Height;

    /// <summary>Number of pixels covered (0 for an empty box).</summary>
    public int Area => IsEmpty ? 0 : Width * Height;

    /// <summary>True when the box covers no pixel.</summary>
    public bool IsEmpty => Width <= 0 || Height <= 0;

    /// <summary>Builds a box from inclusive left/top and exclusive right/bottom ends.</summary>
    public static BoundingBox FromEdges(int left, int top, int rightExclusive, int bottomExclusive) =>
        new(left, top, rightExclusive - left, bottomExclusive - top);

    /// <summary>True when pixel (x, y) lies in the box.</summary>
    public bool Contains(int x, int y) => x >= X && x < Right && y >= Y && y < Bottom;

    /// <summary>True when the two boxes share at least one pixel.</summary>
    public bool Intersects(BoundingBox other) =>
        !IsEmpty && !other.IsEmpty && X < other.Right && other.X < Right && Y < other.Bottom && other.Y < Bottom;

    /// <summary>The box grown by <paramref name="margin"/> pixels on every side (not clipped).</summary>
    public BoundingBox Inflate(int margin) => new(X - margin, Y - margin, Width + 2 * margin, Height + 2 * margin);

    /// <summary>The part of the box inside a width x height image (possibly empty).</summary>
    public BoundingBox ClipTo(int width, int height)
    {
        int l = Math.Clamp(X, 0, width), t = Math.Clamp(Y, 0, height);
        int r = Math.Clamp(Right, 0, width), b = Math.Clamp(Bottom, 0, height);
        return FromEdges(l, t, Math.Max(l, r), Math.Max(t, b));
    }

    /// <inheritdoc />
    public override string ToString() => $"[x={X}, y={Y}, w={Width}, h={Height}]";
}
