# -*- test-case-name: tests.test_httpauth_static -*-
"""
Tests for L{xmppcomp.httpauth._static.ConfinedFile}: protect mode's
directory follows no symbolic link that leaves it and lists no directory,
unless told to. Real files in a temporary directory, served by a real
twisted.web L{Site} on 127.0.0.1 and fetched with a real L{Agent}; the
cases that need a file changed between lookup and rendering use
L{DummyRequest}.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent
from twisted.web.resource import IResource
from twisted.web.test.requesthelper import DummyRequest

from xmppcomp.httpauth._static import ConfinedFile

from .httphelpers import fetchBody, serveResource

SECRET = b"root:x:0:0:the secret outside:/root:/bin/sh\n"


def makeTree(base: FilePath[str]) -> tuple[FilePath[str], FilePath[str]]:
    """
    Make, under C{base}::

        outside/passwd            the secret, not to be served
        outside/dir/passwd        the same, in a directory
        www/a.txt                 a plain file
        www/sub/b.txt             a directory without index
        www/withindex/index.html  a directory with one
        www/sub/inside.txt   -> ../a.txt         (stays inside)
        www/insidedir        -> sub              (stays inside)
        www/passwd           -> ../outside/passwd
        www/outdir           -> ../outside/dir
        www/absolute         -> /abs/outside/passwd (absolute link)
        www/badindex/index.html -> ../../outside/passwd

    @return: the served directory (C{www}) and C{outside}.
    """
    outside = base.child("outside")
    outside.child("dir").makedirs()
    outside.child("passwd").setContent(SECRET)
    outside.child("dir").child("passwd").setContent(SECRET)
    www = base.child("www")
    www.child("sub").makedirs()
    www.child("withindex").makedirs()
    www.child("badindex").makedirs()
    www.child("a.txt").setContent(b"public a\n")
    www.child("sub").child("b.txt").setContent(b"public b\n")
    www.child("withindex").child("index.html").setContent(b"<p>index</p>\n")
    os.symlink("../a.txt", www.child("sub").child("inside.txt").path)
    os.symlink("sub", www.child("insidedir").path)
    os.symlink("../outside/passwd", www.child("passwd").path)
    os.symlink("../outside/dir", www.child("outdir").path)
    os.symlink(outside.child("passwd").path, www.child("absolute").path)
    os.symlink("../../outside/passwd", www.child("badindex").child("index.html").path)
    return www, outside


class ServedTreeTests(TestCase):
    """
    L{ConfinedFile} over a real socket.
    """

    def setUp(self) -> None:
        base = FilePath(self.mktemp())
        base.makedirs()
        self.www, self.outside = makeTree(base)
        self.agent = Agent(reactor)

    @defer.inlineCallbacks
    def serve(self, resource: IResource) -> Any:
        """
        Serve C{resource} on a free port of 127.0.0.1 until the test ends.
        """
        port = yield serveResource(self, resource)
        self.base = b"http://127.0.0.1:%d" % (port,)

    @defer.inlineCallbacks
    def get(self, path: bytes, method: bytes = b"GET") -> Any:
        """
        Request C{path} from the served resource.

        @return: the status code, the response, the body.
        """
        response, body = yield fetchBody(self.agent, method, self.base + path)
        return response.code, response, body

    @defer.inlineCallbacks
    def test_plainFiles(self) -> Any:
        """
        Files in the directory and below are served as L{File} serves them.
        """
        yield self.serve(ConfinedFile(self.www.path))
        code, _, body = yield self.get(b"/a.txt")
        self.assertEqual((code, body), (200, b"public a\n"))
        code, _, body = yield self.get(b"/sub/b.txt")
        self.assertEqual((code, body), (200, b"public b\n"))

    @defer.inlineCallbacks
    def test_linkLeavingIsMissing(self) -> Any:
        """
        A link to a file outside the directory, relative or absolute,
        answers 404 like a missing file, for GET and HEAD, and the file's
        content is not sent.
        """
        yield self.serve(ConfinedFile(self.www.path))
        for path in (b"/passwd", b"/absolute"):
            for method in (b"GET", b"HEAD"):
                code, _, body = yield self.get(path, method)
                self.assertEqual(code, 404, (path, method))
                self.assertNotIn(b"secret", body)
        code, _, missing = yield self.get(b"/nothing-here")
        self.assertEqual(code, 404)
        code, _, body = yield self.get(b"/passwd")
        self.assertEqual(body, missing)

    @defer.inlineCallbacks
    def test_directoryLinkLeavingIsMissing(self) -> Any:
        """
        A link to a directory outside is not traversed: a file below it
        answers 404.
        """
        yield self.serve(ConfinedFile(self.www.path, listDirectories=True))
        code, _, body = yield self.get(b"/outdir/passwd")
        self.assertEqual(code, 404)
        self.assertNotIn(b"secret", body)
        code, _, body = yield self.get(b"/outdir/")
        self.assertEqual(code, 404)
        self.assertNotIn(b"passwd", body)

    @defer.inlineCallbacks
    def test_linkInsideFollowed(self) -> Any:
        """
        Links whose target stays inside the directory are followed, to a
        file and through a directory.
        """
        yield self.serve(ConfinedFile(self.www.path))
        code, _, body = yield self.get(b"/sub/inside.txt")
        self.assertEqual((code, body), (200, b"public a\n"))
        code, _, body = yield self.get(b"/insidedir/b.txt")
        self.assertEqual((code, body), (200, b"public b\n"))

    @defer.inlineCallbacks
    def test_indexLinkLeavingIsMissing(self) -> Any:
        """
        An index file that links outside is not served, and the directory
        (without another index) answers 404 with or without its slash.
        """
        yield self.serve(ConfinedFile(self.www.path))
        for path in (b"/badindex/", b"/badindex", b"/badindex/index.html"):
            code, _, body = yield self.get(path)
            self.assertEqual(code, 404, path)
            self.assertNotIn(b"secret", body)

    @defer.inlineCallbacks
    def test_followSymlinks(self) -> Any:
        """
        With C{followSymlinks=True}, links leaving the directory are
        followed, as L{File} does.
        """
        yield self.serve(ConfinedFile(self.www.path, followSymlinks=True))
        code, _, body = yield self.get(b"/passwd")
        self.assertEqual((code, body), (200, SECRET))
        code, _, body = yield self.get(b"/outdir/passwd")
        self.assertEqual((code, body), (200, SECRET))

    @defer.inlineCallbacks
    def test_noListing(self) -> Any:
        """
        By default a directory without an index answers 404, with the
        trailing slash, without it (no redirect that would tell the
        directory exists), and for the served directory itself; none of
        its names are shown.
        """
        yield self.serve(ConfinedFile(self.www.path))
        for path in (b"/sub/", b"/sub", b"/", b"/insidedir/"):
            code, _, body = yield self.get(path)
            self.assertEqual(code, 404, path)
            self.assertNotIn(b"b.txt", body)
            self.assertNotIn(b"a.txt", body)

    @defer.inlineCallbacks
    def test_indexServed(self) -> Any:
        """
        A directory with an index serves it, and redirects to add the
        slash, as L{File} does.
        """
        yield self.serve(ConfinedFile(self.www.path))
        code, _, body = yield self.get(b"/withindex/")
        self.assertEqual((code, body), (200, b"<p>index</p>\n"))
        code, response, _ = yield self.get(b"/withindex")
        self.assertIn(code, (301, 302))
        self.assertTrue(response.headers.getRawHeaders(b"location")[0].endswith(b"/withindex/"))

    @defer.inlineCallbacks
    def test_listDirectories(self) -> Any:
        """
        With C{listDirectories=True}, a directory without an index is
        listed, as L{File} does.
        """
        yield self.serve(ConfinedFile(self.www.path, listDirectories=True))
        code, _, body = yield self.get(b"/sub/")
        self.assertEqual(code, 200)
        self.assertIn(b"b.txt", body)
        code, _, body = yield self.get(b"/")
        self.assertEqual(code, 200)
        self.assertIn(b"a.txt", body)


class ChangedTreeTests(SynchronousTestCase):
    """
    L{ConfinedFile} checks again just before it opens a file.
    """

    def setUp(self) -> None:
        base = FilePath(self.mktemp())
        base.makedirs()
        self.www, self.outside = makeTree(base)

    def test_fileBecameLink(self) -> None:
        """
        A file looked up inside the directory and replaced by a link to the
        outside before it is rendered answers 404, for GET and HEAD.
        """
        for method in (b"GET", b"HEAD"):
            root = ConfinedFile(self.www.path)
            request = DummyRequest([b"later.txt"])
            request.method = method
            self.www.child("later.txt").setContent(b"fine\n")
            child = root.getChild(b"later.txt", request)
            self.www.child("later.txt").remove()
            os.symlink("../outside/passwd", self.www.child("later.txt").path)
            body = child.render(request)
            self.assertEqual(request.responseCode, 404, method)
            self.assertNotIn(b"secret", body + b"".join(request.written))
            self.www.child("later.txt").remove()

    def test_childrenInheritOptions(self) -> None:
        """
        Children made by C{createSimilarFile} keep the root and both
        options.
        """
        root = ConfinedFile(self.www.path, followSymlinks=True, listDirectories=True)
        child = root.createSimilarFile(self.www.child("sub").path)
        self.assertIsInstance(child, ConfinedFile)
        self.assertEqual((child.followSymlinks, child.listDirectories), (True, True))
        strict = ConfinedFile(self.www.path).createSimilarFile(self.www.child("sub").path)
        self.assertEqual((strict.followSymlinks, strict.listDirectories), (False, False))
        # The child keeps the top's root: a link from sub to ../a.txt is
        # inside, though it leaves sub.
        request = DummyRequest([b"inside.txt"])
        self.assertIsInstance(strict.getChild(b"inside.txt", request), ConfinedFile)
