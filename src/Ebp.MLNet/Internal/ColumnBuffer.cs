using Microsoft.ML;
using Microsoft.ML.Data;

namespace Ebp.MLNet.Internal;

/// <summary>
/// Holds one pass-through column's values for the rows of a batch, since the input cursor has moved past them by the
/// time they are served. Values are copied so that later input rows cannot overwrite them.
/// </summary>
internal abstract class ColumnBuffer
{
    public abstract void Fill(int slot);

    /// <summary>Stores the type's default (null for an image) after a failed read.</summary>
    public abstract void Clear(int slot);

    /// <summary>The stored value of a slot, boxed.</summary>
    public abstract object? Get(int slot);

    /// <summary>A <c>ValueGetter&lt;T&gt;</c> serving the slot returned by <paramref name="slot"/>.</summary>
    public abstract Delegate MakeGetter(Func<int> slot);

    public static ColumnBuffer Create(DataViewRowCursor input, DataViewSchema.Column column, int capacity)
    {
        var raw = column.Type.RawType;
        Type type;
        if (raw.IsGenericType && raw.GetGenericTypeDefinition() == typeof(VBuffer<>))
            type = typeof(VectorBuffer<>).MakeGenericType(raw.GetGenericArguments()[0]);
        else if (raw == typeof(ReadOnlyMemory<char>))
            type = typeof(TextBuffer);
        else
            type = typeof(ValueBuffer<>).MakeGenericType(raw);
        return (ColumnBuffer)Activator.CreateInstance(type, input, column, capacity)!;
    }

    private sealed class ValueBuffer<T> : ColumnBuffer
    {
        private readonly ValueGetter<T> _getter;
        private readonly T[] _values;

        public ValueBuffer(DataViewRowCursor input, DataViewSchema.Column column, int capacity)
        {
            _getter = input.GetGetter<T>(column);
            _values = new T[capacity];
        }

        public override void Fill(int slot)
        {
            T value = default!; // a fresh value: a getter may reuse what it is handed
            _getter(ref value);
            _values[slot] = value;
        }

        public override void Clear(int slot) => _values[slot] = default!;

        public override object? Get(int slot) => _values[slot];

        public override Delegate MakeGetter(Func<int> slot) => (ValueGetter<T>)((ref T dst) => dst = _values[slot()]);
    }

    private sealed class TextBuffer : ColumnBuffer
    {
        private readonly ValueGetter<ReadOnlyMemory<char>> _getter;
        private readonly ReadOnlyMemory<char>[] _values;

        public TextBuffer(DataViewRowCursor input, DataViewSchema.Column column, int capacity)
        {
            _getter = input.GetGetter<ReadOnlyMemory<char>>(column);
            _values = new ReadOnlyMemory<char>[capacity];
        }

        public override void Fill(int slot)
        {
            ReadOnlyMemory<char> value = default;
            _getter(ref value);
            _values[slot] = value.ToString().AsMemory(); // text may point into a reused buffer
        }

        public override void Clear(int slot) => _values[slot] = default;

        public override object? Get(int slot) => _values[slot];

        public override Delegate MakeGetter(Func<int> slot) =>
            (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> dst) => dst = _values[slot()]);
    }

    private sealed class VectorBuffer<T> : ColumnBuffer
    {
        private readonly ValueGetter<VBuffer<T>> _getter;
        private readonly VBuffer<T>[] _values;
        private VBuffer<T> _scratch;

        public VectorBuffer(DataViewRowCursor input, DataViewSchema.Column column, int capacity)
        {
            _getter = input.GetGetter<VBuffer<T>>(column);
            _values = new VBuffer<T>[capacity];
        }

        public override void Fill(int slot)
        {
            _getter(ref _scratch);
            _scratch.CopyTo(ref _values[slot]);
        }

        public override void Clear(int slot) => _values[slot] = default;

        public override object? Get(int slot) => _values[slot];

        public override Delegate MakeGetter(Func<int> slot) =>
            (ValueGetter<VBuffer<T>>)((ref VBuffer<T> dst) => _values[slot()].CopyTo(ref dst));
    }
}
