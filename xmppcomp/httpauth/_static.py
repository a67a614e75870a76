# -*- test-case-name: tests.test_httpauth_static -*-
"""
The directory served in protect mode: a L{twisted.web.static.File} that
keeps to its directory.

L{File} follows every symbolic link it meets and lists every directory
without an index file. Behind an authentication gateway both widen what a
confirmed user may read beyond what the operator meant to publish: a link
to C{/etc} dropped in the tree by some other tool serves C{/etc}, and a
listing shows names the operator never linked to. L{ConfinedFile} does
neither unless told to.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.static import File, Registry

__all__ = ["ConfinedFile"]


class ConfinedFile(File):
    """
    A L{File} for protect mode that, by default:

      - follows no symbolic link whose target is outside the directory it
        was made for (its root): such a link answers 404 like a missing
        file, whether it is the file asked for or a directory on the way
        to it. A link whose target stays inside the root is followed. The
        check compares real paths (every link resolved), when the path is
        traversed and again just before the file is opened;
      - lists no directory: a directory without an index file (one of
        L{File.indexNames}) answers 404, with or without the trailing
        slash (so its existence is not told by a redirect either). 404
        rather than 403: the client learns nothing a missing name would
        not tell it.

    Everything else is L{File}'s: types, ranges, C{If-Modified-Since},
    the redirect that adds the slash to a directory that has an index.
    Children are made by L{createSimilarFile} and share the root and the
    options.

    Names are looked up as L{File} does: each path segment is one decoded
    name (UTF-8), which is what the protect resource puts in the request's
    C{postpath}.

    C{processors} and C{ignoredExts} (empty by default, and not used by
    protect mode) bypass the check of the final file when they pick
    another file than the name asked for.

    @ivar followSymlinks: whether links leaving the root are followed
        (L{File}'s behaviour).
    @ivar listDirectories: whether directories without an index file are
        listed (L{File}'s behaviour).
    @ivar _root: the real path of the directory the top resource was made
        for.
    """

    def __init__(
        self,
        path: str,
        defaultType: str = "text/html",
        ignoredExts: Sequence[str] = (),
        registry: Registry | None = None,
        *,
        followSymlinks: bool = False,
        listDirectories: bool = False,
    ) -> None:
        """
        @param path: the directory (or file) to serve: it is the root the
            links must stay in.
        @param defaultType: see L{File}.
        @param ignoredExts: see L{File}.
        @param registry: see L{File}.
        @param followSymlinks: follow links that leave the root too.
        @param listDirectories: list directories without an index file.
        """
        super().__init__(path, defaultType, ignoredExts, registry)
        self.followSymlinks = followSymlinks
        self.listDirectories = listDirectories
        self._root = os.path.realpath(path)

    def _confined(self, path: str) -> bool:
        """
        Whether C{path}, every link resolved, is the root or below it (or
        links need not be checked).
        """
        if self.followSymlinks:
            return True
        real = os.path.realpath(path)
        return os.path.commonpath([self._root, real]) == self._root

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        """
        L{File.getChild}, with a child whose real path leaves the root (or
        below a directory whose real path does) answered as missing.
        """
        if not self._confined(self.path):
            return self.childNotFound
        if path and not self.followSymlinks:
            # What File.getChild would look at first: refuse it before a
            # processor gets a chance to open it.
            try:
                named = os.path.join(self.path, path.decode("utf-8"))
            except UnicodeDecodeError:
                return self.childNotFound
            if os.path.lexists(named) and not self._confined(named):
                return self.childNotFound
        child = super().getChild(path, request)
        if isinstance(child, File) and not self._confined(child.path):
            return self.childNotFound
        return child

    def directoryListing(self) -> IResource:
        """
        L{File.directoryListing} when directories are listed; otherwise
        L{File.childNotFound} (404).
        """
        if self.listDirectories:
            return super().directoryListing()
        return self.childNotFound

    def _index(self) -> str | None:
        """
        The path of this directory's index file, if it has one inside the
        root.
        """
        found = self.childSearchPreauth(*self.indexNames)
        if found is None or not self._confined(found.path):
            return None
        return found.path

    def render_GET(self, request: IRequest) -> bytes | int:
        """
        L{File.render_GET}, with this file answered as missing if its real
        path left the root since it was looked up, and a directory without
        an index answered as missing (instead of redirected) when
        directories are not listed.
        """
        self.restat(False)
        if not self._confined(self.path):
            return self.childNotFound.render(request)
        if self.isdir() and not self.listDirectories and self._index() is None:
            return self.childNotFound.render(request)
        result: bytes | int = super().render_GET(request)
        return result

    render_HEAD = render_GET

    def createSimilarFile(self, path: str) -> ConfinedFile:
        """
        A L{ConfinedFile} for C{path} with this one's settings, root and
        options.
        """
        similar = self.__class__(
            path,
            self.defaultType,
            self.ignoredExts,
            self.registry,
            followSymlinks=self.followSymlinks,
            listDirectories=self.listDirectories,
        )
        similar.processors = self.processors
        similar.indexNames = self.indexNames[:]
        similar.childNotFound = self.childNotFound
        similar._root = self._root
        return similar
