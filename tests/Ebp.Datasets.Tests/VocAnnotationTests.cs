namespace Ebp.Datasets.Tests;

[TestClass]
public sealed class VocAnnotationTests
{
    // A 20x10 image. Two overlapping dogs, two cats (the second reaching out of the image).
    private const string Xml = """
        <annotation>
          <folder>VOC2007</folder>
          <filename>000001.jpg</filename>
          <size><width>20</width><height>10</height><depth>3</depth></size>
          <segmented>0</segmented>
          <object>
            <name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
            <bndbox><xmin>2</xmin><ymin>2</ymin><xmax>6</xmax><ymax>5</ymax></bndbox>
          </object>
          <object>
            <name>dog</name><difficult>1</difficult>
            <bndbox><xmin>4</xmin><ymin>3</ymin><xmax>9</xmax><ymax>7</ymax></bndbox>
          </object>
          <object>
            <name> cat </name>
            <bndbox><xmin>10</xmin><ymin>1</ymin><xmax>20</xmax><ymax>10</ymax></bndbox>
          </object>
          <object>
            <name>cat</name>
            <bndbox><xmin>15</xmin><ymin>8</ymin><xmax>25</xmax><ymax>12</ymax></bndbox>
          </object>
        </annotation>
        """;

    [TestMethod]
    public void Parse_ReadsSizeAndObjects()
    {
        VocAnnotation a = VocAnnotation.Parse(Xml);
        Assert.AreEqual("000001.jpg", a.FileName);
        Assert.AreEqual("VOC2007", a.Folder);
        Assert.AreEqual(20, a.Width);
        Assert.AreEqual(10, a.Height);
        Assert.AreEqual(3, a.Depth);
        Assert.HasCount(4, a.Objects);
        CollectionAssert.AreEqual(new[] { "dog", "cat" }, a.ClassNames.ToArray());

        VocObject dog = a.Objects[0];
        Assert.AreEqual(new VocBox(2, 2, 6, 5), dog.Box);
        Assert.IsTrue(dog.Truncated);
        Assert.IsFalse(dog.Difficult);
        Assert.AreEqual("Left", dog.Pose);
        Assert.IsTrue(a.Objects[1].Difficult);
        Assert.IsNull(a.Objects[2].Pose);
        Assert.AreEqual("cat", a.Objects[2].Name, "names are trimmed");
    }

    [TestMethod]
    public void VocBoxes_Are1BasedInclusive()
    {
        // xmin=2..xmax=6 are pixels 1..5 in 0-based terms: 5 wide; ymin=2..ymax=5: rows 1..4, 4 high.
        Assert.AreEqual(new BoundingBox(1, 1, 5, 4), new VocBox(2, 2, 6, 5).ToPixelBox());
        Assert.AreEqual(20, new VocBox(2, 2, 6, 5).ToPixelBox().Area);
        Assert.AreEqual(new BoundingBox(0, 0, 1, 1), new VocBox(1, 1, 1, 1).ToPixelBox());
        Assert.AreEqual(new VocBox(2, 2, 6, 5), VocBox.FromPixelBox(new BoundingBox(1, 1, 5, 4)));
        Assert.AreEqual(new VocBox(1, 1, 80, 80), VocBox.FromPixelBox(new BoundingBox(0, 0, 80, 80)));
    }

    [TestMethod]
    public void ClassMask_IsTheUnionOfTheClassBoxes()
    {
        VocAnnotation a = VocAnnotation.Parse(Xml);

        // Dogs: 5x4 = 20 and 6x5 = 30 pixels, overlapping on columns 3..5 x rows 2..4 = 3x3 = 9: union 20 + 30 - 9 = 41.
        bool[] dogs = a.ClassMask("dog");
        Assert.HasCount(200, dogs);
        Assert.AreEqual(41, dogs.Count(b => b));
        Assert.IsTrue(dogs[1 * 20 + 1], "top-left pixel of the first dog (VOC (2,2))");
        Assert.IsTrue(dogs[6 * 20 + 8], "bottom-right pixel of the second dog (VOC (9,7))");
        Assert.IsFalse(dogs[0], "VOC (1,1) is outside both dogs");
        Assert.IsFalse(dogs[1 * 20 + 6], "VOC (7,2) is right of the first dog, above the second");

        // Without the difficult second dog: just the first box.
        Assert.AreEqual(20, a.ClassMask("dog", includeDifficult: false).Count(b => b));

        // Cats: columns 9..19 x rows 0..9 = 11x10 = 110; the second cat, clipped to columns 14..19 x rows 7..9, lies inside it.
        Assert.AreEqual(110, a.ClassMask("cat").Count(b => b));
        Assert.AreEqual(0, a.ClassMask("bird").Count(b => b));
    }

    [TestMethod]
    public void FractionalCoordinates_AreRoundedHalfAwayFromZero()
    {
        const string xml = """
            <annotation><size><width>10</width><height>10</height></size>
            <object><name>x</name><bndbox><xmin>1.5</xmin><ymin>2.4</ymin><xmax>4.5</xmax><ymax>6</ymax></bndbox></object>
            </annotation>
            """;
        VocAnnotation a = VocAnnotation.Parse(xml);
        Assert.AreEqual(new VocBox(2, 2, 5, 6), a.Objects[0].Box);
        Assert.AreEqual(0, a.Depth, "depth is optional");
        Assert.IsNull(a.FileName);
    }

    [TestMethod]
    public void MalformedXml_NamesTheFileAndLine()
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            VocAnnotation.Parse("<annotation>\n<size><width>3</width>\n</annotation>", "broken.xml"));
        StringAssert.Contains(e.Message, "broken.xml");
        StringAssert.Contains(e.Message, "line");
    }

    [TestMethod]
    public void MissingOrBadElements_NameTheElement()
    {
        string noXmax = Xml.Replace("<xmax>9</xmax>", "");
        var e1 = Assert.ThrowsExactly<InvalidDataException>(() => VocAnnotation.Parse(noXmax, "a.xml"));
        StringAssert.Contains(e1.Message, "a.xml");
        StringAssert.Contains(e1.Message, "<object>[2]/<bndbox>");
        StringAssert.Contains(e1.Message, "<xmax>");

        var e2 = Assert.ThrowsExactly<InvalidDataException>(() => VocAnnotation.Parse(Xml.Replace("<width>20</width>", "<width>twenty</width>"), "b.xml"));
        StringAssert.Contains(e2.Message, "<size>/<width>");
        StringAssert.Contains(e2.Message, "twenty");

        var e3 = Assert.ThrowsExactly<InvalidDataException>(() => VocAnnotation.Parse(Xml.Replace("<size>", "<sise>").Replace("</size>", "</sise>")));
        StringAssert.Contains(e3.Message, "<size>");

        var e4 = Assert.ThrowsExactly<InvalidDataException>(() => VocAnnotation.Parse(Xml.Replace("<xmin>10</xmin>", "<xmin>21</xmin>")));
        StringAssert.Contains(e4.Message, "<object>[3]/<bndbox>");
        StringAssert.Contains(e4.Message, "xmin <= xmax");

        var e5 = Assert.ThrowsExactly<InvalidDataException>(() => VocAnnotation.Parse("<labels/>"));
        StringAssert.Contains(e5.Message, "<annotation>");

        var e6 = Assert.ThrowsExactly<InvalidDataException>(() => VocAnnotation.Parse(Xml.Replace("<name>dog</name><pose>", "<name> </name><pose>")));
        StringAssert.Contains(e6.Message, "<object>[1]/<name>");
    }

    [TestMethod]
    public void Load_NamesThePathInErrors()
    {
        string dir = TestSets.NewTempDir();
        try
        {
            string path = Path.Combine(dir, "bad.xml");
            File.WriteAllText(path, Xml.Replace("<ymax>5</ymax>", "<ymax>x</ymax>"));
            var e = Assert.ThrowsExactly<InvalidDataException>(() => VocAnnotation.Load(path));
            StringAssert.Contains(e.Message, path);
            StringAssert.Contains(e.Message, "<object>[1]/<bndbox>/<ymax>");
            Assert.ThrowsExactly<FileNotFoundException>(() => VocAnnotation.Load(Path.Combine(dir, "none.xml")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void SceneAnnotation_RoundTripsThroughAFile()
    {
        ClutteredScene scene = ClutteredMnistGenerator.ForTest(TestSets.Test).GenerateOne(99, 3);
        VocAnnotation written = VocAnnotation.FromScene(scene, "scene_000003.png");
        string dir = TestSets.NewTempDir();
        try
        {
            string path = Path.Combine(dir, "scene_000003.xml");
            written.Save(path);
            string text = File.ReadAllText(path);
            Assert.IsFalse(text.StartsWith("<?xml", StringComparison.Ordinal), "no XML declaration, like VOC");
            StringAssert.Contains(text, "<filename>scene_000003.png</filename>");
            StringAssert.Contains(text, "<depth>1</depth>");
            Assert.AreEqual(text, written.ToXml());

            VocAnnotation read = VocAnnotation.Load(path);
            Assert.AreEqual(80, read.Width);
            Assert.AreEqual(80, read.Height);
            Assert.AreEqual(1, read.Depth);
            Assert.HasCount(scene.Digits.Count, read.Objects);
            for (int i = 0; i < scene.Digits.Count; i++)
            {
                SceneDigit d = scene.Digits[i];
                VocObject o = read.Objects[i];
                Assert.AreEqual(d.ClassId.ToString(System.Globalization.CultureInfo.InvariantCulture), o.Name);
                Assert.AreEqual(d.Box, o.Box.ToPixelBox());
                Assert.AreEqual(d.Box.X + 1, o.Box.XMin);
                Assert.AreEqual(d.Box.Right, o.Box.XMax);
                bool[] mask = read.ClassMask(o.Name);
                Assert.AreEqual(d.Box.Area, mask.Count(b => b));
                for (int p = 0; p < mask.Length; p++)
                {
                    if (d.InkMask[p]) Assert.IsTrue(mask[p], "the box mask covers the ink");
                }
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        VocAnnotation named = VocAnnotation.FromScene(scene, "x.png", c => "digit" + c);
        Assert.IsTrue(named.Objects.All(o => o.Name.StartsWith("digit", StringComparison.Ordinal)));
    }
}
